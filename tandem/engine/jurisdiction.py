"""Jurisdictions: ISO 3166-1 alpha-2 countries, the groupings rules may name, and the test
every residency and transit rule goes through.

A rule such as "VMs only in the EU" names a grouping; a site or a link names countries. The
groupings are static law, kept here as data so that a decision never depends on a lookup.

Unknown is explicit. A site whose country no source gives, a link endpoint without a site
record, or a blank code is `UNKNOWN` ("??"), never dropped from a set of countries: a path
through a site of unknown country may cross any country, so no rule (other than no rule at
all) admits it. Rules therefore never contain `UNKNOWN`: `expand` refuses to let a rule item
name it (see `NOWHERE`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# The country of a site, link or endpoint that no source names. Never allowed by a rule.
UNKNOWN = "??"

# What a rule item that names no country (blank, "??") expands to. It is not a country, so it
# matches nothing, yet it keeps the rule non-empty: a rule written as [""] or ["??"] admits
# nothing instead of silently becoming "no rule" (which would admit everything).
NOWHERE = "<NOWHERE>"

# The 27 member states of the European Union since 1 February 2020 (ISO codes; Greece is GR).
EU: frozenset[str] = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()
)
# The European Economic Area: the EU plus Iceland, Liechtenstein and Norway.
EEA: frozenset[str] = EU | frozenset({"IS", "LI", "NO"})
# Countries and territories with an EU adequacy decision (GDPR art. 45) in force, as listed
# by the European Commission ("Adequacy decisions", checked 2026-11-30: Andorra, Argentina,
# Brazil (adopted 27 January 2026), Canada, Faroe Islands, Guernsey, Israel, Isle of Man,
# Japan, Jersey, New Zealand, Republic of Korea, Switzerland, United Kingdom (renewed
# 19 December 2025), United States, Uruguay), plus the EEA, where data flows freely anyway.
# Two decisions are partial: Canada covers commercial organisations (PIPEDA) and the United
# States only organisations certified under the EU-US Data Privacy Framework; Tandem cannot
# know an operator's certification, so a tenant who needs more must list countries itself.
# The European Patent Organisation's decision (2025) names no country and is not here.
EU_ADEQUATE: frozenset[str] = EEA | frozenset(
    "AD AR BR CA CH FO GB GG IL IM JE JP KR NZ US UY".split()
)

GROUPS: dict[str, frozenset[str]] = {"EU": EU, "EEA": EEA, "EU_ADEQUATE": EU_ADEQUATE}

# Greece is "EL" in EU usage and "GR" in ISO 3166; the UK is "UK" in common usage and "GB"
# in ISO 3166. Every reader of a country code goes through `normalise`, so both spellings of
# a rule or a site mean the same country.
ALIASES: dict[str, str] = {"EL": "GR", "UK": "GB"}


def normalise(code: str) -> str:
    """Upper-case a country or group code and map common aliases to ISO 3166.

    A blank code stays blank here (callers that need a country use `country`), so that
    existing callers can still tell "not given" from a code.
    """
    c = code.strip().upper()
    return ALIASES.get(c, c)


def country(code: str) -> str:
    """The canonical country of a site or link: `normalise`d, and `UNKNOWN` when blank.

    A value that merely fails to be a country ("Europe", "12") is kept as written: it is in
    no rule, so it is refused like an unknown country, and a rejection still shows it.
    """
    c = normalise(code)
    return c if c else UNKNOWN


def is_unknown(code: str) -> bool:
    """True for a blank code or `UNKNOWN`: a country no rule can admit."""
    return country(code) == UNKNOWN


def describe(code: str) -> str:
    """A country code for a human: `UNKNOWN` is spelt out, so a rejection says what it means."""
    c = country(code)
    return f"{UNKNOWN} (unknown country)" if c == UNKNOWN else c


def groups_of(country_code: str) -> frozenset[str]:
    """The groupings a country belongs to, for example {"EU", "EEA", "EU_ADEQUATE"} for "DE"."""
    c = normalise(country_code)
    return frozenset(name for name, members in GROUPS.items() if c in members)


def expand(allowed: Iterable[str]) -> frozenset[str]:
    """Countries allowed by a rule that mixes country codes and groupings ("EU", "CH").

    An item naming no country (blank or `UNKNOWN`) contributes `NOWHERE` rather than
    nothing, so the rule stays a rule and the unknown country never enters an allowed set
    (code that tests `countries <= allowed` stays correct). An empty input is "no rule".
    """
    out: set[str] = set()
    for item in allowed:
        code = normalise(item)
        if not code or code == UNKNOWN:
            out.add(NOWHERE)
        else:
            out |= GROUPS.get(code, frozenset({code}))
    return frozenset(out)


def first_disallowed(allowed: frozenset[str], countries: Iterable[str]) -> str | None:
    """The first country a rule refuses, or None when the rule admits them all.

    `allowed` is an expanded rule (`expand`); an empty rule admits anything. A blank or
    `UNKNOWN` country is refused and returned as `UNKNOWN`, whatever the rule says. A
    sequence (a path's countries in order) is scanned in its order; any other iterable (a
    set) in sorted order, so the answer never depends on hashing. `UNKNOWN` sorts first.
    """
    if not allowed:
        return None
    if isinstance(countries, str):
        countries = (countries,)
    items = countries if isinstance(countries, Sequence) else sorted(countries)
    for raw in items:
        c = country(raw)
        if c == UNKNOWN or c not in allowed:
            return c
    return None


def allows(allowed: frozenset[str], countries: Iterable[str]) -> bool:
    """True when the rule admits every country: never an unknown one, unless there is no rule.

    An empty `countries` is admitted (nothing is crossed): callers must therefore pass the
    unknown country as `UNKNOWN` rather than leave it out.
    """
    return first_disallowed(allowed, countries) is None
