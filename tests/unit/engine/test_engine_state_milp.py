"""State fold, baselines and the exact MILP on small instances."""

from __future__ import annotations

from dataclasses import replace

import pytest
from joint_fixtures import five_sites, random_topology

from tandem.engine.baselines import decide_nova_cspf, decide_nova_sp
from tandem.engine.decide import decide
from tandem.engine.decision import Kind
from tandem.engine.milp import decide_milp
from tandem.engine.state import State
from tandem.engine.topology import OperState
from tandem.engine.workgen import generate
from tandem.engine.workload import Demand, Rules, VmGroup, WorkloadRequest


def test_apply_release_fold_and_utilisation() -> None:
    st0 = State.empty(five_sites())
    r = WorkloadRequest("w", (VmGroup("g", 2, 4, 8),), (Demand("u", "g", 250, to_site="C"),),
                        Rules.of(vm_jurisdictions=["DE"]))
    d = decide(st0, r)
    st1 = st0.apply(d)
    assert st1.workloads["w"] is d
    site = d.site_of["g"]
    assert st1.site_used[site] == (8.0, 16.0, 0.0)
    assert st1.site_free(site)[0] == 64 - 8
    first = d.paths[0]
    assert st1.utilisation()[(first.links[0], first.sites[0])] == pytest.approx(0.25)
    assert st1.apply(replace(d, kind=Kind.REJECTED)) is st1  # a rejection changes nothing
    assert st1.release("w").is_empty() and st1.release("nope") is st1
    assert st0.is_empty() and not st1.is_empty()


def test_with_topology_keeps_reservations_and_flags_overload() -> None:
    st = State.empty(five_sites())
    r = WorkloadRequest("w", (VmGroup("g"),), (Demand("u", "g", 400, to_site="E"),),
                        Rules.of(vm_jurisdictions=["FR"]))
    st = st.apply(decide(st, r))
    topo = st.topology
    down = st.with_topology(topo.with_link(replace(topo.links["ce"], oper_state=OperState.DOWN)))
    assert down.used == st.used and down.over_reserved()
    assert st.with_topology(topo).over_reserved() == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_milp_is_never_worse_than_the_heuristic_on_one_request(seed: int) -> None:
    """Same objective, same candidate paths: the exact optimum bounds the beam search."""
    topo = random_topology(seed, 6)
    state = State.empty(topo)
    for r in generate(topo, 12, seed, bw_low=0.05, bw_high=0.3, diverse_share=0.0):
        h, m = decide(state, r), decide_milp(state, r)
        if h.kind is Kind.PLACED:
            assert m.kind is Kind.PLACED
            assert m.score <= h.score + 1e-6
            state = state.apply(h)
        assert not state.over_reserved()


def test_milp_respects_rules() -> None:
    st = State.empty(five_sites())
    r = WorkloadRequest("w", (VmGroup("web", 1, 4, 4), VmGroup("db", 1, 4, 4)),
                        (Demand("d", "web", 300, to_group="db"),
                         Demand("u", "db", 100, to_site="E")),
                        Rules.of(vm_jurisdictions=["DE", "FR"], anti_affinity=(("web", "db"),)))
    d = decide_milp(st, r)
    assert d.kind is Kind.PLACED
    assert d.site_of["web"] != d.site_of["db"]
    assert set(d.site_of.values()) <= {"A", "B", "C"}
    assert sum(p.bandwidth_mbps for p in d.paths if p.demand_id == "d") == pytest.approx(300)
    assert not st.apply(d).over_reserved()
    bad = replace(r, rules=Rules.of(vm_jurisdictions=["US"], anti_affinity=(("web", "db"),)))
    assert decide_milp(st, bad).kind is Kind.REJECTED


def test_decoupled_baselines_place_by_compute_alone() -> None:
    st = State.empty(five_sites())
    r = WorkloadRequest("w", (VmGroup("web", 1, 4, 4), VmGroup("db", 1, 4, 4)),
                        (Demand("d", "web", 300, to_group="db"),))
    # Nova spreads: both groups on the sites with the most free RAM, not together.
    sp, cspf = decide_nova_sp(st, r), decide_nova_cspf(st, r)
    assert sp.site_of == cspf.site_of
    assert sp.site_of["web"] != sp.site_of["db"]
    joint = decide(st, r)
    assert joint.site_of["web"] == joint.site_of["db"]


def test_shortest_path_baseline_rejects_where_cspf_detours() -> None:
    st = State.empty(five_sites())
    st = st.with_topology(st.topology.with_site(replace(st.topology.sites["A"], vcpus=0)))
    de = Rules.of(vm_jurisdictions=["DE"])  # only B has compute now
    for i in range(5):
        r = WorkloadRequest(f"w{i}", (VmGroup("g"),), (Demand("u", "g", 300, to_site="C"),), de)
        st = st.apply(decide_nova_sp(st, r))
    r = WorkloadRequest("x", (VmGroup("g"),), (Demand("u", "g", 300, to_site="C"),), de)
    sp = decide_nova_sp(st, r)
    assert sp.rejection is not None and sp.rejection.constraint == "bandwidth"
    assert decide_nova_cspf(st, r).kind is Kind.PLACED
