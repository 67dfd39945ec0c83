"""Paths: hand-checked graphs, link-disjointness, Yen's order against networkx, determinism."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tandem.engine.loaders import load_topology
from tandem.engine.paths import (
    PathFinder,
    edge_disjoint_paths,
    k_shortest_paths,
    shortest_path,
)
from tandem.engine.topology import Link, OperState, Site, Topology

DATA = Path(__file__).resolve().parents[3] / "data"


def topo(edges: list[tuple[str, str, float]], cap: float = 10.0) -> Topology:
    sites = {s: Site(s) for e in edges for s in e[:2]}
    links = {f"{a}{b}": Link(f"{a}{b}", a, b, cap, cap, latency_ms=w) for a, b, w in edges}
    return Topology(sites=sites, links=links)


# a - b - d is 2 hops but 20 ms; a - c - e - d is 3 hops and 3 ms.
DIAMOND = topo([("a", "b", 10), ("b", "d", 10), ("a", "c", 1), ("c", "e", 1), ("e", "d", 1)])


def test_latency_vs_hops() -> None:
    by_latency = shortest_path(DIAMOND, "a", "d", "latency")
    by_hops = shortest_path(DIAMOND, "a", "d", "hops")
    assert by_latency is not None and by_hops is not None
    assert by_latency.sites == ("a", "c", "e", "d") and by_latency.latency_ms == 3.0
    assert by_hops.sites == ("a", "b", "d") and by_hops.latency_ms == 20.0
    assert by_latency.links == ("ac", "ce", "ed") and by_latency.hops == 3
    assert by_latency.arcs() == (("ac", "a"), ("ce", "c"), ("ed", "e"))


def test_disjoint_paths_are_link_disjoint_and_ordered() -> None:
    ps = edge_disjoint_paths(DIAMOND, "a", "d", 4)
    assert [p.sites for p in ps] == [("a", "c", "e", "d"), ("a", "b", "d")]
    assert not set(ps[0].links) & set(ps[1].links)


def test_unusable_and_zero_capacity_directions_are_skipped() -> None:
    down = DIAMOND.with_link(Link("ce", "c", "e", 10, 10, latency_ms=1,
                                  oper_state=OperState.DOWN))
    p = shortest_path(down, "a", "d")
    assert p is not None and p.sites == ("a", "b", "d")
    one_way = DIAMOND.with_link(Link("ce", "c", "e", 0.0, 10, latency_ms=1))
    p = shortest_path(one_way, "a", "d")
    assert p is not None and p.sites == ("a", "b", "d")
    back = shortest_path(one_way, "d", "a")
    assert back is not None and back.sites == ("d", "e", "c", "a")


def test_unreachable_same_site_and_unknown() -> None:
    t = topo([("a", "b", 1)]).with_site(Site("z"))
    assert shortest_path(t, "a", "z") is None
    assert shortest_path(t, "a", "a") is None
    assert edge_disjoint_paths(t, "a", "z", 3) == []
    with pytest.raises(KeyError, match="unknown site"):
        shortest_path(t, "a", "nowhere")


def test_exclusions() -> None:
    pf = PathFinder(DIAMOND)
    p = pf.shortest("a", "d", exclude_sites=["c"])
    assert p is not None and p.sites == ("a", "b", "d")
    assert pf.shortest("a", "d", exclude_links=["ac", "bd"]) is None


def test_tie_break_is_stable() -> None:
    # Two equal 2-hop routes a-x-d and a-y-d: the one via the smaller site id wins, every time.
    t = topo([("a", "y", 1), ("y", "d", 1), ("a", "x", 1), ("x", "d", 1)])
    for _ in range(3):
        p = shortest_path(Topology(sites=dict(t.sites), links=dict(t.links)), "a", "d")
        assert p is not None and p.sites == ("a", "x", "d")


def test_k_shortest_small() -> None:
    ps = k_shortest_paths(DIAMOND, "a", "d", 5)
    assert [p.latency_ms for p in ps] == [3.0, 20.0]


def test_gtsce_disjoint_paths() -> None:
    t = load_topology(DATA / "zoo/GtsCe.graphml")
    pf = PathFinder(t)
    pairs = [(a, b) for a in list(t.sites)[:6] for b in list(t.sites)[-6:] if a != b]
    for a, b in pairs:
        ps = pf.edge_disjoint(a, b, 4)
        assert ps, (a, b)
        first = pf.shortest(a, b)
        assert first is not None and ps[0] == first
        used: set[str] = set()
        for p in ps:
            assert p.src == a and p.dst == b
            assert len(set(p.sites)) == len(p.sites)  # simple
            assert not used & set(p.links)
            used |= set(p.links)
        assert [p.latency_ms for p in ps] == sorted(p.latency_ms for p in ps)


@st.composite
def graphs(draw: st.DrawFn) -> Topology:
    n = draw(st.integers(3, 8))
    names = [f"s{i}" for i in range(n)]
    edges = []
    for i in range(n):
        for j in range(i + 1, n):
            if draw(st.booleans()):
                edges.append((names[i], names[j], float(draw(st.integers(1, 9)))))
    sites = {s: Site(s) for s in names}
    links = {f"l{a}-{b}": Link(f"l{a}-{b}", a, b, 1.0, 1.0, latency_ms=w) for a, b, w in edges}
    return Topology(sites=sites, links=links)


@settings(max_examples=60, deadline=None)
@given(graphs(), st.integers(1, 6))
def test_yen_matches_networkx(t: Topology, k: int) -> None:
    g = nx.Graph()
    g.add_nodes_from(t.sites)
    for link in t.links.values():
        g.add_edge(link.a, link.b, weight=link.latency_ms)
    src, dst = "s0", sorted(t.sites)[-1]
    ours = k_shortest_paths(t, src, dst, k)
    if not nx.has_path(g, src, dst):
        assert ours == []
        return
    theirs = []
    for path in nx.shortest_simple_paths(g, src, dst, weight="weight"):
        theirs.append(nx.path_weight(g, path, "weight"))
        if len(theirs) == k:
            break
    assert [p.latency_ms for p in ours] == pytest.approx(theirs)
    assert len({p.sites for p in ours}) == len(ours)  # distinct
    for p in ours:
        assert len(set(p.sites)) == len(p.sites)  # loopless


@settings(max_examples=60, deadline=None)
@given(graphs(), st.integers(1, 4))
def test_disjoint_paths_property(t: Topology, k: int) -> None:
    src, dst = "s0", sorted(t.sites)[-1]
    ps = edge_disjoint_paths(t, src, dst, k)
    assert len(ps) <= k
    seen: set[str] = set()
    for p in ps:
        assert not seen & set(p.links)
        seen |= set(p.links)
    # greedy never finds more than the max number of link-disjoint paths (= min cut)
    g = nx.Graph()
    g.add_nodes_from(t.sites)
    g.add_edges_from((link.a, link.b) for link in t.links.values())
    cut = nx.edge_connectivity(g, src, dst) if nx.has_path(g, src, dst) else 0
    assert len(ps) <= cut
    if cut > 0:
        assert ps  # reachable: at least one path
    assert ps == edge_disjoint_paths(t, src, dst, k)
