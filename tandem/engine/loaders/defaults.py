"""Documented defaults for fields a topology file does not give (see docs/TOPOLOGY.md).

Why these values:
- Capacity 1000 per direction: the convention of the WAN traffic-engineering literature (NCFlow,
  POP, Teal) for Topology Zoo graphs, which carry no capacities; it keeps our TE benchmark
  comparable with theirs. We read it as Mbps.
- Latency from the great-circle distance at the speed of light in fibre, about 200 km/ms
  (5 µs/km, refractive index ~1.5). Real fibre routes are longer than the geodesic, so this is
  a lower bound; it is what the TE literature uses too.
- Sites get a uniform, modest compute capacity so that placement has something to place on.

Capacities written as text (link labels, units) are read in `capacity.py`.
"""

from __future__ import annotations

import math

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
