"""Link capacities written as text: units, SONET/SDH and PDH names, ranges, multipliers.

Topology Zoo link labels are free text written by hand ("10 Gbps", "OC-192c", "2x10GE",
"100-155 Mbit/s", "Lit Fibre"). A capacity is what admission control trusts, so the reading
is conservative and never silent:
- a range or a choice ("100-155 Mbit/s", "1 to 10 Gbps", "2.5/10 Gbps") gives its **lower
  bound**, and a label naming several rates ("100 Mbps - 1 Gbps") gives the **lowest**: a
  reservation must never count on capacity the link may not have. The caller is told
  (`LabelRate.note`) so it can warn;
- "N x rate" (2x10G, 4 x STM-64) is N times the rate (a bundle of N circuits);
- a bare number has no unit and is not read ("1000" could be Mbps or kbps);
- single-letter units must touch the number ("10G", "100M"): "Route 5 M" is not a rate;
- a comma followed by exactly three digits is a thousands separator ("1,000 Mbps"), any
  other comma between digits a decimal one ("2,5 Gbps");
- anything else is not a rate (None), and the caller falls back to the default with a
  warning naming the link.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Mbps per unit. Keys are lower-case; "MB"/"GB" are read as bits, as Topology Zoo uses them.
_PREFIX_MBPS = {"k": 1e-3, "m": 1.0, "g": 1e3, "t": 1e6}
_SUFFIXES = ("", "b", "bps", "b/s", "bit", "bits", "bit/s", "bits/s", "bitps")
_ETHERNET = {"ge": 1e3, "gbe": 1e3, "gige": 1e3, "gig": 1e3, "gig-e": 1e3,
             "gigabit": 1e3, "gigabits": 1e3, "gbit ethernet": 1e3,
             "megabit": 1.0, "megabits": 1.0, "kilobit": 1e-3, "kilobits": 1e-3,
             "terabit": 1e6, "terabits": 1e6}
UNIT_MBPS: dict[str, float] = {
    **{p + s: f for p, f in _PREFIX_MBPS.items() for s in _SUFFIXES},
    **_ETHERNET,
    "b": 1e-6, "bps": 1e-6, "b/s": 1e-6, "bit/s": 1e-6,
}

# Line rates of the PDH names (Mbps). SONET OC-n and SDH STM-n are computed from n.
_TDM_MBPS = {"t1": 1.544, "ds1": 1.544, "e1": 2.048, "e3": 34.368, "t3": 44.736,
             "ds3": 44.736}
_OC_MBPS = 51.84  # OC-1 / STS-1 / STM-0; OC-n = n x 51.84, STM-n = OC-3n
# Named Ethernet rates written without a number ("Gigabit Ethernet", "Fast Ethernet").
_WORD_MBPS = {"fast ethernet": 100.0, "fastethernet": 100.0, "gigabit ethernet": 1e3,
              "gige": 1e3, "gbe": 1e3, "ten gigabit ethernet": 1e4}

_NUM = r"\d+(?:\.\d+)?"
_MULTI_UNITS = sorted((u for u in UNIT_MBPS if len(u) > 1), key=len, reverse=True)
_UNIT = (r"(?:\s*(?:" + "|".join(re.escape(u) for u in _MULTI_UNITS) + r")"
         r"|[kmgt])(?![a-z0-9])")
_RATE = re.compile(
    r"(?<![a-z0-9.])(?:(?P<mult>\d+)\s*x\s*)?(?:"
    rf"(?P<lo>{_NUM})\s*(?:-|/|to)\s*(?P<hi>{_NUM})(?P<runit>{_UNIT})"
    rf"|(?P<num>{_NUM})(?P<unit>{_UNIT})"
    r"|(?P<sonet>oc|stm)\s*-?\s*(?P<level>\d+)\s*c?(?![a-z0-9])"
    r"|(?P<tdm>(?:ds|t|e)-?[13])(?![a-z0-9])"
    r"|(?P<word>" + "|".join(re.escape(w) for w in sorted(_WORD_MBPS, key=len, reverse=True))
    + r")(?![a-z0-9])"
    r")",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class LabelRate:
    """A capacity read from a label, in Mbps, and why, when a choice had to be made."""

    mbps: float
    note: str = ""


def unit_factor_mbps(unit: str) -> float | None:
    """Mbps per unit for a LinkSpeedUnits value ("G", "M", "Gbps", "Mbit/s"), None if unknown.

    A blank unit is "M": the Topology Zoo toolset writes LinkSpeed in Mbps unless told.
    """
    u = " ".join(unit.split()).lower()
    return UNIT_MBPS.get(u or "m")


def _clean(label: str) -> str:
    t = label.replace("\u00d7", "x").replace("*", "x")
    t = re.sub("[\u2010-\u2015\u2212]", "-", t)
    t = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", t)  # 1,000 -> 1000
    return re.sub(r"(?<=\d),(?=\d)", ".", t)  # 2,5 -> 2.5


def _fmt(mbps: float) -> str:
    return f"{mbps:g} Mbps"


def parse_rate_label(label: str) -> LabelRate | None:
    """The capacity (Mbps) a free-text label states, or None when it states none."""
    text = _clean(label)
    rates: list[float] = []
    ranges: list[tuple[float, float]] = []
    for m in _RATE.finditer(text):
        mult = int(m.group("mult")) if m.group("mult") else 1
        if m.group("lo"):
            f = UNIT_MBPS[m.group("runit").strip().lower()]
            lo, hi = float(m.group("lo")) * f * mult, float(m.group("hi")) * f * mult
            ranges.append((min(lo, hi), max(lo, hi)))
            rates.append(min(lo, hi))
        elif m.group("num"):
            rates.append(float(m.group("num")) * UNIT_MBPS[m.group("unit").strip().lower()]
                         * mult)
        elif m.group("sonet"):
            stm, n = m.group("sonet").lower() == "stm", int(m.group("level"))
            if n == 0 and not stm:
                continue  # there is no OC-0
            level = 3 * n if stm else n  # STM-n = OC-3n; STM-0 = OC-1
            rates.append(round(_OC_MBPS * max(level, 1), 6) * mult)
        elif m.group("tdm"):
            rates.append(_TDM_MBPS[m.group("tdm").lower().replace("-", "")] * mult)
        else:
            rates.append(_WORD_MBPS[" ".join(m.group("word").lower().split())] * mult)
    if not rates:
        return None
    low = min(rates)
    if len(rates) == 1 and ranges:
        lo, hi = ranges[0]
        return LabelRate(low, f"a range from {_fmt(lo)} to {_fmt(hi)}: using the lower bound")
    if len(set(rates)) > 1 or ranges:
        distinct = sorted(set(rates))
        listed = ", ".join(_fmt(r) for r in distinct[:6]) + (", ..." if len(distinct) > 6 else "")
        return LabelRate(low, f"several rates ({listed}): using the lowest")
    return LabelRate(low)


def capacity_from_label(label: str) -> float | None:
    """Capacity in Mbps from a free-text link label ("10 Gbps", "OC-192c", "2x10GE")."""
    got = parse_rate_label(label)
    return None if got is None else got.mbps
