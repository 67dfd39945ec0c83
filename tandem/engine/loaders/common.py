"""Shared construction of `Site` and `Link` values with the documented defaults.

A site of unknown country keeps `jurisdiction == ""` (the data model's "not given", as in an
inventory event without one; `jurisdiction.country` reads it as `UNKNOWN`). A link touching
such a site lists `UNKNOWN` among the countries it crosses: it does cross a country nobody
named, and code that reads only `Link.jurisdictions` must not see a known-only set.
"""

from __future__ import annotations

import math

from ..jurisdiction import country as canonical_country
from ..jurisdiction import normalise
from ..topology import Link, LinkKind, Site
from .countries import CAPITALS
from .defaults import (
    DEFAULT_COST_PER_MBPS,
    DEFAULT_COST_PER_VCPU_HOUR,
    DEFAULT_SITE_MEMORY_GIB,
    DEFAULT_SITE_STORAGE_GIB,
    DEFAULT_SITE_VCPUS,
    fibre_latency_ms,
)
from .errors import TopologyFileError


def make_site(
    site_id: str, name: str, coords: tuple[float, float] | None, country: str
) -> Site:
    lat, lon = coords if coords is not None else (0.0, 0.0)
    return Site(
        site_id=site_id,
        name=name or site_id,
        latitude=lat,
        longitude=lon,
        jurisdiction=normalise(country),
        vcpus=DEFAULT_SITE_VCPUS,
        memory_gib=DEFAULT_SITE_MEMORY_GIB,
        storage_gib=DEFAULT_SITE_STORAGE_GIB,
        cost_per_vcpu_hour=DEFAULT_COST_PER_VCPU_HOUR,
    )


def make_link(
    link_id: str,
    a: Site,
    b: Site,
    coords: dict[str, tuple[float, float]],
    cap_ab: float,
    cap_ba: float,
    *,
    latency_ms: float | None = None,
    cost_per_mbps: float = DEFAULT_COST_PER_MBPS,
) -> Link:
    """A link between two sites; latency from coordinates unless the file gave one."""
    if latency_ms is None:
        ca, cb = coords.get(a.site_id), coords.get(b.site_id)
        if (ca is None or cb is None) and a.jurisdiction != b.jurisdiction:
            # No coordinates: estimate from the countries' capitals when both are known
            # and differ (same country gives no information: the default applies).
            ca, cb = CAPITALS.get(a.jurisdiction), CAPITALS.get(b.jurisdiction)
        latency_ms = fibre_latency_ms(ca, cb)
    # The countries of both endpoints; an unknown one stays in as UNKNOWN.
    juris = frozenset(canonical_country(c) for c in (a.jurisdiction, b.jurisdiction))
    return Link(
        link_id=link_id,
        a=a.site_id,
        b=b.site_id,
        capacity_ab_mbps=cap_ab,
        capacity_ba_mbps=cap_ba,
        latency_ms=latency_ms,
        kind=LinkKind.FIBRE,
        jurisdictions=juris,
        cost_per_mbps=cost_per_mbps,
    )


def to_float(
    raw: object, path: str, element: str, fld: str, line: int | None = None,
    *, minimum: float | None = None, maximum: float | None = None,
) -> float:
    """A finite number from a file field, or a `TopologyFileError` naming where it came from."""
    if isinstance(raw, bool):
        raise TopologyFileError(path, f"expected a number, got {raw!r}", element=element,
                                field=fld, line=line)
    try:
        value = float(raw.strip()) if isinstance(raw, str) else float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TopologyFileError(path, f"expected a number, got {raw!r}", element=element,
                                field=fld, line=line) from None
    if not math.isfinite(value):
        raise TopologyFileError(path, f"expected a finite number, got {raw!r}", element=element,
                                field=fld, line=line)
    if minimum is not None and value < minimum:
        raise TopologyFileError(path, f"{value:g} is below the minimum {minimum:g}",
                                element=element, field=fld, line=line)
    if maximum is not None and value > maximum:
        raise TopologyFileError(path, f"{value:g} is above the maximum {maximum:g}",
                                element=element, field=fld, line=line)
    return value


def coords_of(
    lat_raw: object | None, lon_raw: object | None, path: str, element: str,
    line: int | None, lat_field: str = "Latitude", lon_field: str = "Longitude",
) -> tuple[float, float] | None:
    """(lat, lon) when both are given, None when neither is; one without the other is an error."""
    if lat_raw in (None, "") and lon_raw in (None, ""):
        return None
    if lat_raw in (None, ""):
        raise TopologyFileError(path, "longitude given without latitude", element=element,
                                field=lat_field, line=line)
    if lon_raw in (None, ""):
        raise TopologyFileError(path, "latitude given without longitude", element=element,
                                field=lon_field, line=line)
    lat = to_float(lat_raw, path, element, lat_field, line, minimum=-90.0, maximum=90.0)
    lon = to_float(lon_raw, path, element, lon_field, line, minimum=-180.0, maximum=180.0)
    return lat, lon
