"""Jurisdictions: ISO 3166-1 alpha-2 countries and the groupings rules may name.

A rule such as "VMs only in the EU" names a grouping; a site or a link names countries. The
groupings are static law, kept here as data so that a decision never depends on a lookup.
"""

from __future__ import annotations

from collections.abc import Iterable

EU: frozenset[str] = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split()
)
EEA: frozenset[str] = EU | frozenset({"IS", "LI", "NO"})
# Countries with an EU adequacy decision (GDPR art. 45), usable as a rule grouping.
EU_ADEQUATE: frozenset[str] = EEA | frozenset(
    {"AD", "AR", "CA", "FO", "GG", "IL", "IM", "JP", "JE", "NZ", "KR", "CH", "GB", "UY", "US"}
)

GROUPS: dict[str, frozenset[str]] = {"EU": EU, "EEA": EEA, "EU_ADEQUATE": EU_ADEQUATE}

# Greece is "EL" in EU usage and "GR" in ISO 3166; the UK is "UK" in common usage.
ALIASES: dict[str, str] = {"EL": "GR", "UK": "GB"}


def normalise(code: str) -> str:
    """Upper-case a country or group code and map common aliases to ISO 3166."""
    c = code.strip().upper()
    return ALIASES.get(c, c)


def groups_of(country: str) -> frozenset[str]:
    """The groupings a country belongs to, for example {"EU", "EEA", "EU_ADEQUATE"} for "DE"."""
    c = normalise(country)
    return frozenset(name for name, members in GROUPS.items() if c in members)


def expand(allowed: Iterable[str]) -> frozenset[str]:
    """Countries allowed by a rule that mixes country codes and groupings ("EU", "CH")."""
    out: set[str] = set()
    for item in allowed:
        code = normalise(item)
        out |= GROUPS.get(code, frozenset({code}))
    return frozenset(out)


def allows(allowed: frozenset[str], countries: Iterable[str]) -> bool:
    """True when every country is in the expanded allowed set; an empty rule allows anything."""
    if not allowed:
        return True
    return all(normalise(c) in allowed for c in countries)
