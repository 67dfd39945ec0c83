"""`tandem.engine.topogen`, `graphml_write` and `tandem gen-topology` (files in tmp_path)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tandem.cli import main
from tandem.engine.jurisdiction import allows
from tandem.engine.loaders import load_topology
from tandem.engine.loaders.defaults import fibre_latency_ms
from tandem.engine.topogen import bridges, generate_topology, stats
from tandem.engine.topology import Link, Topology
from tandem.services.graphml_write import graphml_text, write_graphml

REPO = Path(__file__).resolve().parents[3]
GENERATED = REPO / "data" / "generated" / "waxman-1000.graphml"


def _edge_set(topo: Topology) -> set[tuple[int, int]]:
    idx = {s: i for i, s in enumerate(topo.sites)}
    return {(min(idx[ln.a], idx[ln.b]), max(idx[ln.a], idx[ln.b])) for ln in topo.links.values()}


def test_same_seed_same_topology_and_bytes_other_seed_differs() -> None:
    a, b, c = generate_topology(120, 7), generate_topology(120, 7), generate_topology(120, 8)
    assert a == b
    assert graphml_text(a) == graphml_text(b)
    assert a != c


def test_the_committed_file_is_what_the_documented_command_writes(tmp_path: Path) -> None:
    """data/generated/README.md says how the file was made; running it must give the same bytes."""
    out = tmp_path / "w.graphml"
    t0 = time.perf_counter()
    assert main(["gen-topology", "--sites", "1000", "--seed", "1", "--out", str(out)]) == 0
    elapsed = time.perf_counter() - t0
    assert out.read_bytes() == GENERATED.read_bytes()
    assert elapsed < 10.0, f"generating 1,000 sites took {elapsed:.1f} s"


def test_thousand_sites_size_degree_connectivity_and_no_bridge() -> None:
    topo = load_topology(GENERATED)
    s = stats(topo)
    assert s["sites"] == 1000
    assert 2.8 <= s["avg_degree"] <= 3.3
    assert s["is_connected"] == 1.0
    assert bridges(1000, _edge_set(topo)) == []
    assert s["countries"] >= 30 and s["unknown_country_sites"] == 0
    # the mix of line rates: all three present, 10 Gbps the most common
    assert min(s["gbps_1"], s["gbps_10"], s["gbps_100"]) > 100
    assert s["gbps_1"] + s["gbps_10"] + s["gbps_100"] == s["links"]
    # continents: sites in both hemispheres and on both sides of the Atlantic and Pacific
    lats = [x.latitude for x in topo.sites.values()]
    lons = [x.longitude for x in topo.sites.values()]
    assert min(lats) < -30 and max(lats) > 50 and min(lons) < -100 and max(lons) > 130


@settings(max_examples=15, deadline=None)
@given(n=st.integers(2, 60), seed=st.integers(0, 10_000), unknown=st.integers(0, 5),
       degree=st.sampled_from([2.0, 3.0, 4.0]))
def test_round_trip_through_the_loader_is_identical(
    tmp_path_factory: pytest.TempPathFactory, n: int, seed: int, unknown: int, degree: float
) -> None:
    topo = generate_topology(n, seed, avg_degree=degree, unknown_countries=min(unknown, n))
    path = tmp_path_factory.mktemp("rt") / "t.graphml"
    write_graphml(topo, path)
    back = load_topology(path)
    assert back == topo  # sites, links, capacities, countries, coordinates, latencies, name
    assert stats(topo)["is_connected"] == 1.0
    if n >= 3:
        assert bridges(n, _edge_set(topo)) == []
    assert stats(topo)["unknown_country_sites"] == min(unknown, n)


def test_latency_is_the_loaders_great_circle_and_countries_are_the_endpoints() -> None:
    topo = generate_topology(50, 3)
    for ln in topo.links.values():
        a, b = topo.sites[ln.a], topo.sites[ln.b]
        assert ln.latency_ms == fibre_latency_ms((a.latitude, a.longitude),
                                                 (b.latitude, b.longitude))
        assert ln.jurisdictions == frozenset({a.jurisdiction, b.jurisdiction})
        assert ln.capacity_ab_mbps == ln.capacity_ba_mbps in (1_000.0, 10_000.0, 100_000.0)


def test_unknown_countries_only_when_asked_and_never_allowed_by_a_rule(tmp_path: Path) -> None:
    assert stats(generate_topology(200, 5))["unknown_country_sites"] == 0
    topo = generate_topology(200, 5, unknown_countries=4)
    unknown = [s for s in topo.sites.values() if not s.jurisdiction]
    assert len(unknown) == 4
    path = tmp_path / "u.graphml"
    write_graphml(topo, path)
    text = path.read_text()
    for s in unknown:  # no Country field, and no graph GeoLocation the loader could fall back to
        block = text.split(f'<node id="{s.site_id}">', 1)[1].split("</node>", 1)[0]
        assert 'key="d2"' not in block
    assert "GeoLocation" not in text
    back = load_topology(path)
    for s in unknown:
        assert not allows(frozenset({"US", "DE", "GB"}), [back.sites[s.site_id].jurisdiction])


def test_allow_bridges_skips_the_repair() -> None:
    with_repair = generate_topology(300, 2)
    without = generate_topology(300, 2, two_edge_connected=False)
    assert bridges(300, _edge_set(with_repair)) == []
    assert bridges(300, _edge_set(without)) != []
    assert stats(without)["is_connected"] == 1.0


def test_bridges_finds_exactly_the_cut_edges() -> None:
    # 0-1-2 triangle, 2-3 bridge, 3-4-5 triangle, 5-6 bridge (6 a leaf)
    edges = {(0, 1), (1, 2), (0, 2), (2, 3), (3, 4), (4, 5), (3, 5), (5, 6)}
    found = {(min(u, v), max(u, v)): sorted(side) for u, v, side in bridges(7, edges)}
    assert found == {(2, 3): [3, 4, 5, 6], (5, 6): [6]}


def test_writer_refuses_an_asymmetric_link(tmp_path: Path) -> None:
    topo = generate_topology(5, 1)
    lid, ln = next(iter(topo.links.items()))
    bad = topo.with_link(replace(ln, capacity_ba_mbps=ln.capacity_ab_mbps / 2))
    with pytest.raises(ValueError, match=lid):
        write_graphml(bad, tmp_path / "x.graphml")


def test_writer_round_trips_odd_capacities_and_names(tmp_path: Path) -> None:
    topo = generate_topology(4, 9)
    first = next(iter(topo.links.values()))
    odd = topo.with_link(Link(first.link_id, first.a, first.b, 9953.28, 9953.28,
                              first.latency_ms, jurisdictions=first.jurisdictions))
    site = next(iter(odd.sites.values()))
    odd = odd.with_site(replace(site, name='A&B <"x">'))
    path = tmp_path / "odd.graphml"
    write_graphml(odd, path)
    back = load_topology(path)
    assert back.links[first.link_id].capacity_ab_mbps == 9953.28
    assert back.sites[site.site_id].name == 'A&B <"x">'


@pytest.mark.parametrize(("args", "needle"), [
    (["--sites", "1"], "--sites"),
    (["--sites", "10", "--unknown-countries", "11"], "--unknown-countries"),
])
def test_cli_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   args: list[str], needle: str) -> None:
    assert main(["gen-topology", *args, "--out", str(tmp_path / "x.graphml")]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_cli_reports_an_unwritable_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "missing-dir" / "x.graphml"
    assert main(["gen-topology", "--sites", "5", "--out", str(out)]) == 2
    assert str(out) in capsys.readouterr().err
