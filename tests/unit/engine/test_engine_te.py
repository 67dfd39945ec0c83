"""TE engine and LP bound: hand-checked optima, feasibility always, engine ≤ LP, traffic model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tandem.engine.lp import solve_lp
from tandem.engine.mcf import FlowProblem
from tandem.engine.paths import PathFinder
from tandem.engine.te import solve_te
from tandem.engine.topology import Link, Site, Topology
from tandem.engine.traffic import Demand, gravity_demands, gravity_shares, node_weights


def topo(edges: list[tuple[str, str, float]]) -> Topology:
    sites = {s: Site(s) for e in edges for s in e[:2]}
    links = {f"{a}{b}": Link(f"{a}{b}", a, b, c, c, latency_ms=1.0) for a, b, c in edges}
    return Topology(sites=sites, links=links)


def problem(t: Topology, demands: list[tuple[str, str, float]], k: int = 4) -> FlowProblem:
    pf = PathFinder(t, "hops")
    ds = [Demand(a, b, v) for a, b, v in demands]
    return FlowProblem.build(t, ds, lambda a, b: pf.edge_disjoint(a, b, k))


def feasible(p: FlowProblem, flow: np.ndarray) -> bool:
    ref = max(float(p.capacity.max(initial=1.0)), float(p.volume.max(initial=1.0)))
    return p.violation(flow) <= 1e-9 * ref and bool((p.arc_load(flow) <= p.capacity).all())


HAND = [
    # line a-b-c: serving a->b and b->c beats the 2-hop a->c: optimum 20
    ([("a", "b", 10), ("b", "c", 10)], [("a", "c", 10), ("a", "b", 10), ("b", "c", 10)], 20.0),
    # split over two routes: 5 direct + 7 via c
    ([("a", "b", 5), ("a", "c", 10), ("c", "b", 10)], [("a", "b", 12)], 12.0),
    # two demands share one bottleneck of 10
    ([("a", "x", 100), ("b", "x", 100), ("x", "d", 10)], [("a", "d", 8), ("b", "d", 8)], 10.0),
    # each demand must keep to its direct link so that the other can use it: 20
    ([("a", "b", 10), ("a", "c", 10), ("c", "b", 10)], [("a", "b", 10), ("c", "b", 10)], 20.0),
    # opposite directions do not compete
    ([("a", "b", 10)], [("a", "b", 10), ("b", "a", 10)], 20.0),
]


@pytest.mark.parametrize(("edges", "demands", "optimum"), HAND)
def test_hand_checked_optimum(edges: list[tuple[str, str, float]],
                              demands: list[tuple[str, str, float]], optimum: float) -> None:
    p = problem(topo(edges), demands)
    lp = solve_lp(p)
    assert lp.total == pytest.approx(optimum, rel=1e-7)
    assert feasible(p, lp.flow) or p.violation(lp.flow) < 1e-7
    eng = solve_te(p)
    assert feasible(p, eng.flow)
    assert eng.total == pytest.approx(optimum, rel=1e-6)


def test_everything_fits_returns_all_demand() -> None:
    p = problem(topo([("a", "b", 100), ("b", "c", 100)]), [("a", "c", 30), ("c", "a", 40)])
    eng = solve_te(p)
    assert eng.total == pytest.approx(70.0)
    assert feasible(p, eng.flow)


def test_empty_and_unroutable() -> None:
    t = topo([("a", "b", 10)]).with_site(Site("z"))
    p = problem(t, [("a", "z", 5)])
    assert p.n_paths == 0
    assert solve_te(p).total == 0.0 and solve_lp(p).total == 0.0


def test_deterministic() -> None:
    edges = [("a", "b", 7), ("b", "c", 5), ("a", "c", 3), ("c", "d", 9), ("b", "d", 4)]
    dem = [("a", "d", 9), ("b", "c", 6), ("d", "a", 5), ("a", "c", 8)]
    p = problem(topo(edges), dem)
    assert np.array_equal(solve_te(p).flow, solve_te(problem(topo(edges), dem)).flow)


@st.composite
def instances(draw: st.DrawFn) -> FlowProblem:
    n = draw(st.integers(3, 7))
    names = [f"s{i}" for i in range(n)]
    edges = [(names[i], names[i + 1], float(draw(st.integers(1, 20)))) for i in range(n - 1)]
    for i in range(n):
        for j in range(i + 2, n):
            if draw(st.booleans()):
                edges.append((names[i], names[j], float(draw(st.integers(1, 20)))))
    pairs = [(a, b) for a in names for b in names if a != b]
    chosen = draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=12, unique=True))
    demands = [(a, b, float(draw(st.integers(1, 30)))) for a, b in chosen]
    return problem(topo(edges), demands, k=draw(st.integers(1, 4)))


@settings(max_examples=40, deadline=None)
@given(instances())
def test_engine_feasible_and_bounded_by_lp(p: FlowProblem) -> None:
    eng = solve_te(p)
    lp = solve_lp(p)
    assert feasible(p, eng.flow)
    assert eng.total <= lp.total * (1 + 1e-7) + 1e-9
    assert eng.total >= 0.95 * lp.total  # small instances: near the optimum too
    # the engine's certificate is a true upper bound on the optimum (weak duality)
    assert eng.bound is not None and eng.bound >= lp.total * (1 - 1e-7) - 1e-9


# -- traffic -------------------------------------------------------------------------------
GRID = topo([("a", "b", 10), ("b", "c", 10), ("c", "d", 10), ("d", "a", 10), ("a", "c", 40)])


def test_gravity_shares_and_seeds() -> None:
    shares = gravity_shares(GRID, seed=3)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert len(shares) == 12
    assert shares == gravity_shares(GRID, seed=3)
    assert shares != gravity_shares(GRID, seed=4)
    w = node_weights(GRID)
    assert w["a"] == 120.0  # 10+10+40 each way
    s0 = gravity_shares(GRID, seed=None)
    assert s0[("a", "c")] / s0[("b", "d")] == pytest.approx((120 * 120) / (40 * 40))


def test_scale_one_fits_shortest_paths_exactly() -> None:
    pf = PathFinder(GRID, "hops")
    first = {(a, b): pf.shortest(a, b).arcs()  # type: ignore[union-attr]
             for a in GRID.sites for b in GRID.sites if a != b}
    d1 = gravity_demands(GRID, 1.0, 0, first)
    load: dict[tuple[str, str], float] = {}
    for d in d1:
        for arc in first[(d.src, d.dst)]:
            load[arc] = load.get(arc, 0.0) + d.volume
    util = max(v / GRID.links[lid].capacity_from(frm) for (lid, frm), v in load.items())
    assert util == pytest.approx(1.0)
    d16 = gravity_demands(GRID, 16.0, 0, first)
    assert sum(d.volume for d in d16) == pytest.approx(16 * sum(d.volume for d in d1))
