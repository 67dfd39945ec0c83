"""Scale (issue 10): per-decision work follows the part of the WAN a decision touches, and the
all-pairs path sets come from one compiled sweep per source — yet they are exactly the paths
the per-pair searches give, and the flow problem built from them is the same instance."""

from __future__ import annotations

import random

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tandem.engine.decide import decide
from tandem.engine.mcf import FlowProblem
from tandem.engine.network import Network
from tandem.engine.paths import PathFinder, PathSet
from tandem.engine.state import State
from tandem.engine.topogen import generate_topology
from tandem.engine.topology import Link, Site, Topology
from tandem.engine.traffic import Demand
from tandem.engine.workgen import generate


@st.composite
def multigraphs(draw: st.DrawFn) -> Topology:
    n = draw(st.integers(2, 9))
    names = [f"s{i}" for i in range(n)]
    links = {}
    for k in range(draw(st.integers(0, 18))):
        a, b = draw(st.sampled_from(names)), draw(st.sampled_from(names))
        if a != b:  # parallel links and one-way directions included
            links[f"l{k}"] = Link(f"l{k}", a, b, draw(st.sampled_from([0.0, 10.0])), 10.0,
                                  float(draw(st.integers(1, 5))))
    return Topology({s: Site(s) for s in names}, links, "m")


@settings(max_examples=80, deadline=None)
@given(multigraphs(), st.integers(1, 4), st.sampled_from(["latency", "hops"]))
def test_all_pairs_sweep_equals_the_per_pair_search(t: Topology, k: int, weight: str) -> None:
    pf = PathFinder(t, weight)  # type: ignore[arg-type]
    ps = pf.all_pairs_edge_disjoint(k)
    assert isinstance(ps, PathSet)
    pairs = [(a, b) for a in t.sites for b in t.sites if a != b]
    assert list(ps) == pairs and len(ps) == len(pairs)
    total = 0
    for a, b in pairs:
        one = pf.edge_disjoint(a, b, k)
        assert ps[a, b] == one
        total += len(one)
        used: set[str] = set()
        for p in one:  # link-disjoint, usable directions only, simple
            assert not used & set(p.links)
            used |= set(p.links)
            assert len(set(p.sites)) == len(p.sites)
            assert all(t.links[lid].capacity_from(frm) > 0 for lid, frm in p.arcs())
    assert ps.n_paths == total


@settings(max_examples=40, deadline=None)
@given(multigraphs(), st.integers(1, 3), st.randoms(use_true_random=False))
def test_flow_problem_from_a_path_set_is_the_same_instance(t: Topology, k: int,
                                                           rnd: random.Random) -> None:
    pf = PathFinder(t)
    ps = pf.all_pairs_edge_disjoint(k)
    plain = {pair: list(ps[pair]) for pair in ps}
    pairs = [(a, b) for a in t.sites for b in t.sites if a != b] + [("s0", "nowhere")]
    demands = [Demand(a, b, rnd.uniform(1, 5), f"{a}->{b}") for a, b in pairs
               if rnd.random() < 0.7]
    fast = FlowProblem.build(t, demands, ps)
    slow = FlowProblem.build(t, demands, lambda a, b: plain.get((a, b), ()))
    assert fast.arcs == slow.arcs
    assert np.array_equal(fast.capacity, slow.capacity)
    assert np.array_equal(fast.path_demand, slow.path_demand)
    assert np.array_equal(fast.path_hops, slow.path_hops)
    assert (fast.incidence != slow.incidence).nnz == 0
    assert list(fast.paths) == list(slow.paths)


def test_near_orders_sites_by_shortest_latency() -> None:
    topo = generate_topology(60, 3)
    net = Network(topo)
    g = nx.Graph()
    for ln in topo.links.values():
        w = ln.latency_ms
        if g.has_edge(ln.a, ln.b):
            w = min(w, g[ln.a][ln.b]["weight"])
        g.add_edge(ln.a, ln.b, weight=w)
    for s in (0, 17, 42):
        dist = nx.single_source_dijkstra_path_length(g, net.site_ids[s])
        order = [net.site_ids[t] for t in net.near(s)]
        assert sorted(order) == sorted(x for x in dist if x != net.site_ids[s])
        lat = [dist[x] for x in order]
        assert lat == pytest.approx(sorted(lat))
        far = net.near(s)[-1]  # link cost 0: the bound is 0.01 per hop of the fewest hops
        hops = nx.shortest_path_length(g, net.site_ids[s], net.site_ids[far])
        assert net.unit_bound(s, far, 0.01) == pytest.approx(0.01 * hops)


@pytest.mark.parametrize("sites", [150, 600])
def test_a_decision_touches_a_bounded_part_of_the_wan(sites: int) -> None:
    """Candidate paths are computed for the pairs a decision looks at, never for all pairs:
    the count stays the same order on a 150- and a 600-site WAN (22,350 vs 359,400 pairs)."""
    topo = generate_topology(sites, 5)
    state = State.empty(topo)
    touched = []
    for req in generate(topo, 12, 5, net=state.net):
        before = len(state.net._cache.paths)
        dec = decide(state, req)
        touched.append(len(state.net._cache.paths) - before)
        if dec.admitted:
            state = state.apply(dec)
    assert max(touched) < 400, touched
    assert len(state.net._cache.paths) < 0.05 * sites * (sites - 1) + 800


def test_all_pairs_sweep_reruns_a_source_whose_output_row_overflows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path as FsPath

    from tandem.engine import graph
    from tandem.engine.loaders import load_topology

    topo = load_topology(str(FsPath(__file__).resolve().parents[3] / "data/zoo/Abilene.graphml"))
    want = PathFinder(topo).all_pairs_edge_disjoint(3)
    monkeypatch.setattr(graph, "_ROW_HOPS", 0)  # every parallel row too small
    got = PathFinder(topo).all_pairs_edge_disjoint(3)
    assert isinstance(want, PathSet) and isinstance(got, PathSet)
    assert np.array_equal(want.arcs, got.arcs) and np.array_equal(want.count, got.count)
