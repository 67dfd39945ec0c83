"""`tandem.engine.jurisdiction`: the groupings against reference lists, aliases, and the rule
test that never admits an unknown country (issue 10, "transit rules bend")."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tandem.engine.jurisdiction import (
    EEA,
    EU,
    EU_ADEQUATE,
    NOWHERE,
    UNKNOWN,
    allows,
    country,
    describe,
    expand,
    first_disallowed,
    groups_of,
    normalise,
)

# Reference lists, written out by hand from the sources named, with ISO 3166-1 alpha-2 codes.
# Source: the EU's own list of member countries, european-union.europa.eu > "EU countries"
# (27 members since the United Kingdom left on 1 February 2020); checked 2026-11-30.
EU_MEMBERS_2026 = {
    "Austria": "AT", "Belgium": "BE", "Bulgaria": "BG", "Croatia": "HR", "Cyprus": "CY",
    "Czechia": "CZ", "Denmark": "DK", "Estonia": "EE", "Finland": "FI", "France": "FR",
    "Germany": "DE", "Greece": "GR", "Hungary": "HU", "Ireland": "IE", "Italy": "IT",
    "Latvia": "LV", "Lithuania": "LT", "Luxembourg": "LU", "Malta": "MT",
    "Netherlands": "NL", "Poland": "PL", "Portugal": "PT", "Romania": "RO", "Slovakia": "SK",
    "Slovenia": "SI", "Spain": "ES", "Sweden": "SE",
}
# Source: the EEA Agreement (efta.int, "EEA Agreement"): the EU members plus the three EEA
# EFTA states; checked 2026-11-30.
EEA_EFTA_STATES = {"Iceland": "IS", "Liechtenstein": "LI", "Norway": "NO"}
# Source: European Commission, "Adequacy decisions" (commission.europa.eu > Law > Data
# protection > International dimension), GDPR art. 45, plus the Commission's adoption of the
# Brazil decision on 27 January 2026 and the renewal of the UK decisions on 19 December 2025;
# checked 2026-11-30. The European Patent Organisation (2025) is an international
# organisation, not a country, and is deliberately absent.
ADEQUACY_2026 = {
    "Andorra": "AD", "Argentina": "AR", "Brazil": "BR", "Canada": "CA",
    "Faroe Islands": "FO", "Guernsey": "GG", "Israel": "IL", "Isle of Man": "IM",
    "Japan": "JP", "Jersey": "JE", "New Zealand": "NZ", "Republic of Korea": "KR",
    "Switzerland": "CH", "United Kingdom": "GB", "United States": "US", "Uruguay": "UY",
}


def test_eu_is_the_27_members_hungary_included() -> None:
    assert len(EU_MEMBERS_2026) == 27
    assert EU == frozenset(EU_MEMBERS_2026.values())
    assert "HU" in EU and groups_of("HU") == {"EU", "EEA", "EU_ADEQUATE"}
    assert "GB" not in EU  # left in 2020


def test_eea_and_adequacy_groupings_match_the_reference_lists() -> None:
    assert EEA == EU | frozenset(EEA_EFTA_STATES.values())
    assert len(EEA) == 30
    assert EU_ADEQUATE == EEA | frozenset(ADEQUACY_2026.values())
    assert "BR" in EU_ADEQUATE and "GB" in EU_ADEQUATE
    assert "CN" not in EU_ADEQUATE and "IN" not in EU_ADEQUATE


@pytest.mark.parametrize(("alias", "iso"), [("UK", "GB"), ("uk", "GB"), (" EL ", "GR")])
def test_aliases_mean_the_iso_country_in_rules_and_sites(alias: str, iso: str) -> None:
    assert normalise(alias) == iso
    assert country(alias) == iso
    assert expand([alias]) == {iso}
    assert allows(expand([iso]), [alias])
    assert allows(expand([alias]), [iso])


def test_unknown_is_explicit_and_never_allowed_by_a_rule() -> None:
    assert UNKNOWN == "??"
    assert country("") == country("  ") == country("??") == UNKNOWN
    everything = expand(["EU_ADEQUATE", "CN", "IN", "RU"])
    for unknown in ("", "??", " "):
        assert not allows(everything, [unknown])
        assert not allows(everything, ["DE", unknown, "FR"])
        assert first_disallowed(everything, ["DE", unknown]) == UNKNOWN
    # no rule at all admits anything, unknown included
    assert allows(frozenset(), ["??", ""])
    assert first_disallowed(frozenset(), ["??"]) is None


@pytest.mark.parametrize("item", ["", "??", "  "])
def test_a_rule_naming_the_unknown_country_admits_nothing(item: str) -> None:
    """["??"] must not become "no rule", nor a rule that lets unknown countries through."""
    rule = expand([item])
    assert rule == {NOWHERE}
    assert UNKNOWN not in rule and "" not in rule
    assert not allows(rule, [""]) and not allows(rule, ["??"]) and not allows(rule, ["DE"])
    mixed = expand(["DE", item])
    assert allows(mixed, ["DE"]) and not allows(mixed, [item])
    # code that tests sets directly (`countries <= rule`) is safe too
    assert not {UNKNOWN} <= mixed and not {""} <= mixed


def test_first_disallowed_names_the_failing_element_deterministically() -> None:
    rule = expand(["EU"])
    # a sequence (path order) is scanned in order
    assert first_disallowed(rule, ["DE", "CH", "US"]) == "CH"
    assert first_disallowed(rule, ("DE", "US", "CH")) == "US"
    # a set in sorted order, the unknown country first
    assert first_disallowed(rule, frozenset({"US", "CH", "DE"})) == "CH"
    assert first_disallowed(rule, {"US", "", "CH"}) == UNKNOWN
    # a bare string is one country, not two letters
    assert first_disallowed(rule, "US") == "US"
    assert first_disallowed(rule, "DE") is None
    assert describe("") == "?? (unknown country)" and describe("uk") == "GB"


CODES = ["DE", "FR", "HU", "CH", "US", "GB", "UK", "EL", "GR", "NO", "CN", "BR", "de", ""]
RULE_ITEMS = ["EU", "EEA", "EU_ADEQUATE", "DE", "FR", "CH", "US", "UK", "GB", "EL", "??", ""]


@settings(max_examples=300, deadline=None)
@given(rule_items=st.lists(st.sampled_from(RULE_ITEMS), max_size=4),
       countries=st.lists(st.sampled_from([*CODES, "??"]), max_size=6))
def test_allows_is_membership_of_known_countries(rule_items: list[str],
                                                 countries: list[str]) -> None:
    """Re-derived from the reference lists, not from the module's own groupings."""
    ref_groups = {
        "EU": set(EU_MEMBERS_2026.values()),
        "EEA": set(EU_MEMBERS_2026.values()) | set(EEA_EFTA_STATES.values()),
    }
    ref_groups["EU_ADEQUATE"] = ref_groups["EEA"] | set(ADEQUACY_2026.values())
    alias = {"UK": "GB", "EL": "GR"}
    allowed: set[str] = set()
    for item in rule_items:
        code = alias.get(item.strip().upper(), item.strip().upper())
        allowed |= ref_groups.get(code, {code} if code not in ("", "??") else set())
    canon = [alias.get(c.strip().upper(), c.strip().upper()) for c in countries]
    expected = (not rule_items) or all(c not in ("", "??") and c in allowed for c in canon)
    rule = expand(rule_items)
    assert allows(rule, countries) is expected
    bad = first_disallowed(rule, countries)
    assert (bad is None) is expected
    if bad is not None:
        assert bad in {UNKNOWN if c in ("", "??") else c for c in canon}
        assert bad == UNKNOWN or bad not in allowed
