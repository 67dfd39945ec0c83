"""Documented defaults for fields a topology file does not give (see docs/TOPOLOGY.md).

Why these values:
- Capacity 1000 per direction: the convention of the WAN traffic-engineering literature (NCFlow,
  POP, Teal) for Topology Zoo graphs, which carry no capacities; it keeps our TE benchmark
  comparable with theirs. We read it as Mbps.
- Latency from the great-circle distance at the speed of light in fibre, about 200 km/ms
  (5 µs/km, refractive index ~1.5). Real fibre routes are longer than the geodesic, so this is
  a lower bound; it is what the TE literature uses too.
- Sites get a uniform, modest compute capacity so that placement has something to place on.
"""

from __future__ import annotations

import math
import re

DEFAULT_CAPACITY_MBPS = 1000.0
FIBRE_KM_PER_MS = 200.0  # i.e. 5 µs per km
# When either endpoint has no coordinates the latency cannot be estimated: one millisecond per
# link, which makes latency-shortest paths hop-shortest on such files.
DEFAULT_LATENCY_MS = 1.0
EARTH_RADIUS_KM = 6371.0088

DEFAULT_SITE_VCPUS = 512.0
DEFAULT_SITE_MEMORY_GIB = 2048.0
DEFAULT_SITE_STORAGE_GIB = 100_000.0
DEFAULT_COST_PER_VCPU_HOUR = 0.04
DEFAULT_COST_PER_MBPS = 0.0


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in km on a sphere of the mean Earth radius."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def fibre_latency_ms(
    a: tuple[float, float] | None, b: tuple[float, float] | None
) -> float:
    """One-way latency in ms between two (lat, lon) points, or the default if either is unknown."""
    if a is None or b is None:
        return DEFAULT_LATENCY_MS
    return great_circle_km(a[0], a[1], b[0], b[1]) / FIBRE_KM_PER_MS


# Line rates of the SONET/SDH and Ethernet names found in Topology Zoo link labels (Mbps).
_NAMED_RATES: dict[str, float] = {
    "OC-3": 155.52, "OC-12": 622.08, "OC-48": 2488.32, "OC-192": 9953.28, "OC-768": 39813.12,
    "STM-1": 155.52, "STM-4": 622.08, "STM-16": 2488.32, "STM-64": 9953.28,
    "STM-256": 39813.12, "T1": 1.544, "E1": 2.048, "T3": 44.736, "E3": 34.368, "DS3": 44.736,
}
_UNIT_MBPS: dict[str, float] = {
    "": 1.0, "B": 1e-6, "BPS": 1e-6, "K": 1e-3, "KB": 1e-3, "KBPS": 1e-3, "KBIT/S": 1e-3,
    "M": 1.0, "MB": 1.0, "MBPS": 1.0, "MBIT/S": 1.0, "MBITS": 1.0,
    "G": 1e3, "GB": 1e3, "GBPS": 1e3, "GBIT/S": 1e3, "GBITS": 1e3, "GE": 1e3, "GIGE": 1e3,
    "T": 1e6, "TB": 1e6, "TBPS": 1e6,
}
_RATE_RE = re.compile(r"^\s*(\d+(?:[.,]\d+)?)\s*([A-Za-z/]*)\s*$")
_NAMED_RE = re.compile(r"\b(OC|STM)-?(\d+)C?\b|\b(T1|E1|T3|E3|DS3)\b", re.IGNORECASE)


def unit_factor_mbps(unit: str) -> float | None:
    """Mbps per unit for a LinkSpeedUnits value ("G", "M", "Gbps", ...), None if unknown."""
    return _UNIT_MBPS.get(unit.strip().upper())


def capacity_from_label(label: str) -> float | None:
    """Capacity in Mbps from a free-text link label ("10 Gbps", "OC-192c", "2.5 Gbps").

    Labels are free text in Topology Zoo ("Lit Fibre", "GTS CE own Network"): anything not
    recognised yields None and the caller uses the default rather than failing.
    """
    text = label.strip()
    if not text:
        return None
    m = _RATE_RE.match(text)
    if m:
        factor = unit_factor_mbps(m.group(2))
        if factor is not None and m.group(2):
            return float(m.group(1).replace(",", ".")) * factor
    n = _NAMED_RE.search(text)
    if n:
        key = f"{n.group(1).upper()}-{n.group(2)}" if n.group(1) else n.group(3).upper()
        return _NAMED_RATES.get(key)
    return None
