"""Loaders on every reference file in data/: counts as in data/README.md, and the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from tandem.engine.loaders import load_demands, load_topology
from tandem.engine.loaders.defaults import FIBRE_KM_PER_MS, great_circle_km

DATA = Path(__file__).resolve().parents[3] / "data"


@pytest.mark.parametrize(
    ("rel", "sites", "links"),
    [
        ("zoo/Abilene.graphml", 11, 14),
        ("zoo/Geant2012.graphml", 40, 62),
        ("zoo/GtsCe.graphml", 149, 193),
        ("zoo/Colt.graphml", 153, 191),  # 14 parallel pairs kept as distinct links
        ("sndlib/abilene.txt", 12, 15),
        ("sndlib/geant.txt", 22, 36),
        ("sndlib/germany50.txt", 50, 88),
    ],
)
def test_counts_match_data_readme(rel: str, sites: int, links: int) -> None:
    topo = load_topology(DATA / rel)
    assert len(topo.sites) == sites
    assert len(topo.links) == links
    for link in topo.links.values():
        assert link.a in topo.sites and link.b in topo.sites and link.a != link.b
        assert link.capacity_ab_mbps > 0 and link.capacity_ba_mbps > 0
        assert link.latency_ms > 0


def test_b4_directed_arcs_pair_into_links() -> None:
    topo = load_topology(DATA / "b4/B4.json")
    assert len(topo.sites) == 12
    arcs = sum((link.capacity_ab_mbps > 0) + (link.capacity_ba_mbps > 0)
               for link in topo.links.values())
    assert arcs == 38  # as in data/README.md: 38 directed links
    assert len(topo.links) == 19
    assert all(link.capacity_ab_mbps == 5000.0 for link in topo.links.values())


@pytest.mark.parametrize(("rel", "count"), [("sndlib/abilene.txt", 132),
                                            ("sndlib/geant.txt", 462),
                                            ("sndlib/germany50.txt", 662)])
def test_sndlib_demands(rel: str, count: int) -> None:
    demands = load_demands(DATA / rel)
    assert len(demands) == count
    topo = load_topology(DATA / rel)
    assert all(d.src in topo.sites and d.dst in topo.sites for d in demands)
    assert all(d.volume >= 0 for d in demands)


def test_sndlib_geant_first_demand_and_countries() -> None:
    d = load_demands(DATA / "sndlib/geant.txt")[0]
    assert (d.src, d.dst, d.volume, d.demand_id) == ("ny1.ny", "il1.il", 3003.0, "ny1.ny_il1.il")
    topo = load_topology(DATA / "sndlib/geant.txt")
    assert topo.sites["de1.de"].jurisdiction == "DE"
    assert topo.sites["ny1.ny"].jurisdiction == ""  # "ny" is no ISO code: unknown, not guessed
    link = topo.links["at1.at_de1.de"]
    assert link.jurisdictions == frozenset({"AT", "DE"})
    # capacity: pre-installed 0 -> the largest module (40000), cost = module cost / capacity
    assert link.capacity_ab_mbps == link.capacity_ba_mbps == 40000.0
    assert link.cost_per_mbps == pytest.approx(598.0 / 40000.0)


def test_sndlib_latency_is_great_circle_at_fibre_speed() -> None:
    topo = load_topology(DATA / "sndlib/geant.txt")
    at, de = topo.sites["at1.at"], topo.sites["de1.de"]
    km = great_circle_km(at.latitude, at.longitude, de.latitude, de.longitude)
    assert topo.links["at1.at_de1.de"].latency_ms == pytest.approx(km / FIBRE_KM_PER_MS)
    assert (at.latitude, at.longitude) == (48.2091, 16.3729)  # file order is (lon lat)


def test_zoo_defaults_capacity_and_names() -> None:
    gts = load_topology(DATA / "zoo/GtsCe.graphml")
    assert {link.capacity_ab_mbps for link in gts.links.values()} == {1000.0}
    assert gts.sites["n0"].name == "Sarajevo"
    abilene = load_topology(DATA / "zoo/Abilene.graphml")
    # "OC-192c" labels give the SONET line rate
    assert {link.capacity_ab_mbps for link in abilene.links.values()} == {9953.28}
    # GeoLocation "US" applies to nodes without a country
    assert {s.jurisdiction for s in abilene.sites.values()} == {"US"}
    # No coordinates and a single country: the documented 1 ms per link
    assert {link.latency_ms for link in abilene.links.values()} == {1.0}


def test_geant2012_countries_and_capital_latency() -> None:
    topo = load_topology(DATA / "zoo/Geant2012.graphml")
    assert topo.sites["n1"].jurisdiction == "IE"
    assert topo.sites["n2"].jurisdiction == "GB"  # labelled "UK"
    assert topo.sites["n25"].jurisdiction == "SI"  # labelled "SL", geocoded Slovenia
    assert all(s.jurisdiction for s in topo.sites.values())
    ie_uk = [link for link in topo.links.values() if {link.a, link.b} == {"n1", "n2"}]
    assert ie_uk, "Dublin-London link expected"
    km = great_circle_km(53.35, -6.26, 51.51, -0.13)
    assert ie_uk[0].latency_ms == pytest.approx(km / FIBRE_KM_PER_MS)
    assert ie_uk[0].jurisdictions == frozenset({"IE", "GB"})
    # Site coordinates are never invented from the capitals table.
    assert topo.sites["n1"].latitude == 0.0 and topo.sites["n1"].longitude == 0.0


def test_colt_parallel_edges_are_distinct_links() -> None:
    topo = load_topology(DATA / "zoo/Colt.graphml")
    pairs = [frozenset((link.a, link.b)) for link in topo.links.values()]
    assert len(pairs) - len(set(pairs)) == 14


def test_site_compute_defaults() -> None:
    site = next(iter(load_topology(DATA / "b4/B4.json").sites.values()))
    assert site.vcpus > 0 and site.memory_gib > 0 and site.storage_gib > 0
    assert site.cost_per_vcpu_hour > 0


def test_deterministic() -> None:
    a = load_topology(DATA / "zoo/Colt.graphml")
    b = load_topology(DATA / "zoo/Colt.graphml")
    assert a == b
