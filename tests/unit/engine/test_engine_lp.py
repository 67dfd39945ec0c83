"""The path-formulation LP bound and the shared FlowProblem instance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tandem.engine.loaders import load_demands, load_topology
from tandem.engine.lp import solve_lp
from tandem.engine.mcf import FlowProblem
from tandem.engine.paths import PathFinder
from tandem.engine.te import solve_te
from tandem.engine.topology import Link, Site, Topology
from tandem.engine.traffic import Demand

DATA = Path(__file__).resolve().parents[3] / "data"


def test_instance_layout_and_violation() -> None:
    t = Topology(
        sites={s: Site(s) for s in "abc"},
        links={"ab": Link("ab", "a", "b", 10, 4), "bc": Link("bc", "b", "c", 6, 6)},
    )
    pf = PathFinder(t, "hops")
    p = FlowProblem.build(t, [Demand("a", "c", 9), Demand("b", "a", 3)],
                          lambda a, b: pf.edge_disjoint(a, b, 2))
    assert p.arcs == (("ab", "a"), ("bc", "b"), ("ab", "b"))
    assert list(p.capacity) == [10.0, 6.0, 4.0]  # per direction
    assert p.incidence.shape == (2, 3) and p.incidence.nnz == 3
    assert list(p.path_demand) == [0, 1] and list(p.path_hops) == [2, 1]
    assert p.violation(np.array([6.0, 3.0])) == 0.0
    assert p.violation(np.array([7.0, 3.0])) == pytest.approx(1.0)  # bc over by 1
    assert p.violation(np.array([6.0, 3.5])) == pytest.approx(0.5)  # demand b->a over
    assert p.violation(np.array([-2.0, 0.0])) == pytest.approx(2.0)  # negative flow
    lp = solve_lp(p)
    assert lp.total == pytest.approx(9.0) and lp.bound == pytest.approx(9.0)
    assert list(np.round(lp.flow, 6)) == [6.0, 3.0]


def test_simplex_and_ipm_agree_on_sndlib_abilene() -> None:
    t = load_topology(DATA / "sndlib/abilene.txt")
    # The measured matrix ×40 overloads the network so that routing decisions matter.
    demands = [Demand(d.src, d.dst, 40 * d.volume) for d in load_demands(DATA / "sndlib/abilene.txt")]
    pf = PathFinder(t)
    p = FlowProblem.build(t, demands, lambda a, b: pf.edge_disjoint(a, b, 4))
    ipm = solve_lp(p, "highs-ipm")
    ds = solve_lp(p, "highs-ds")
    assert ipm.total == pytest.approx(ds.total, rel=1e-6)
    assert ipm.total < p.volume.sum()  # really congested
    assert p.violation(ipm.flow) < 1e-6 * p.capacity.max()
    eng = solve_te(p)
    assert eng.total <= ipm.total * (1 + 1e-7)
    assert eng.total >= 0.97 * ipm.total
    assert eng.bound is not None and eng.bound >= ipm.total * (1 - 1e-7)  # a true upper bound
