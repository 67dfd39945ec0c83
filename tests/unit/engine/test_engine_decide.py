"""The joint decision on a hand-made five-site federation (see joint_fixtures.five_sites)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from joint_fixtures import five_sites

from tandem.engine.decide import decide
from tandem.engine.decision import Kind
from tandem.engine.state import State
from tandem.engine.workload import Demand, Location, Rules, VmGroup, WorkloadRequest


def req(wid: str, groups: tuple[VmGroup, ...], demands: tuple[Demand, ...] = (),
        rules: Rules = Rules()) -> WorkloadRequest:
    return WorkloadRequest(wid, groups, demands, rules)


WEB = VmGroup("web", 2, 4, 8)
DB = VmGroup("db", 1, 8, 16)


@pytest.fixture
def state() -> State:
    return State.empty(five_sites())


def test_chatty_groups_are_co_located_on_the_cheapest_site(state: State) -> None:
    d = decide(state, req("w", (WEB, DB), (Demand("d", "web", 400, to_group="db"),)))
    assert d.kind is Kind.PLACED
    assert d.site_of == {"web": "E", "db": "E"}  # E is cheapest; co-location needs no WAN
    assert d.paths == ()
    assert d.cost == pytest.approx(16 * 0.01)


def test_anti_affinity_splits_groups_and_reserves_the_traffic(state: State) -> None:
    r = req("w", (WEB, DB), (Demand("d", "web", 400, to_group="db"),),
            Rules.of(anti_affinity=(("web", "db"),)))
    d = decide(state, r)
    assert d.kind is Kind.PLACED
    assert d.site_of["web"] != d.site_of["db"]
    assert sum(p.bandwidth_mbps for p in d.paths) == pytest.approx(400)
    for p in d.paths:
        assert p.sites[0] == d.site_of["web"] and p.sites[-1] == d.site_of["db"]
        assert p.reservation_id.startswith("w/d/")
    st = state.apply(d)
    assert not st.over_reserved()


def test_vm_jurisdiction_limits_sites(state: State) -> None:
    d = decide(state, req("w", (DB,), rules=Rules.of(vm_jurisdictions=["EU"])))
    assert d.site_of == {"db": "C"}  # cheapest EU site; CH and US excluded


@pytest.mark.parametrize(
    ("group", "rules", "constraint"),
    [
        (DB, Rules.of(vm_jurisdictions=["JP"]), "vm_jurisdiction"),
        (VmGroup("x", 1, 1, 1, hypervisor="xen"), Rules(), "hypervisor"),
        (VmGroup("x", 100, 8, 8), Rules(), "compute"),
        (DB, Rules.of(vm_jurisdictions=["EU"], cost_ceiling=0.1), "cost_ceiling"),
    ],
)
def test_rejection_names_the_failed_constraint(
    state: State, group: VmGroup, rules: Rules, constraint: str
) -> None:
    d = decide(state, req("w", (group,), rules=rules))
    assert d.kind is Kind.REJECTED
    assert d.rejection is not None and d.rejection.constraint == constraint
    assert d.explanation.summary.startswith("rejected")


def test_capacity_is_per_direction(state: State) -> None:
    us = Rules.of(vm_jurisdictions=["US"])
    # E→C has 200 Mbps, C→E has 500.
    up = decide(state, req("w", (DB,), (Demand("u", "db", 300, to_site="C"),), us))
    assert up.rejection is not None and up.rejection.constraint == "bandwidth"
    ok = decide(state, req("w", (DB,), (Demand("u", "db", 150, to_site="C"),), us))
    assert ok.kind is Kind.PLACED and ok.paths[0].links == ("ce",)
    eu = Rules.of(vm_jurisdictions=["EU"])
    down = decide(state, req("w", (DB,), (Demand("u", "db", 300, to_site="E"),), eu))
    assert down.kind is Kind.PLACED and down.paths[0].sites[-2:] == ("C", "E")


def test_latency_bound(state: State) -> None:
    us = Rules.of(vm_jurisdictions=["US"])
    d = decide(state, req("w", (DB,), (Demand("u", "db", 10, to_site="A", max_latency_ms=30),), us))
    assert d.rejection is not None and d.rejection.constraint == "latency"
    d = decide(state, req("w", (DB,), (Demand("u", "db", 10, to_site="A", max_latency_ms=50),), us))
    assert d.kind is Kind.PLACED and d.max_latency_ms <= 50


def test_transit_rule_excludes_countries_and_can_reject(state: State) -> None:
    de = Rules.of(vm_jurisdictions=["DE"], transit_jurisdictions=["DE"])
    d = decide(state, req("w", (DB,), (Demand("u", "db", 10, to_site="C"),), de))
    assert d.rejection is not None and d.rejection.constraint == "transit_jurisdiction"
    # Load B→C so that 900 Mbps DE→FR needs the detour through CH.
    pin_b = Rules.of(vm_jurisdictions=["DE"])
    st = state.apply(decide(state, req("load", (VmGroup("g", 1, 1, 1),),
                                       (Demand("x", "g", 600, to_site="C"),), pin_b)))
    assert st.utilisation()[("bc", "B")] == pytest.approx(0.6)
    defr = Rules.of(vm_jurisdictions=["DE"], transit_jurisdictions=["DE", "FR"])
    d = decide(st, req("w", (DB,), (Demand("u", "db", 900, to_site="C"),), defr))
    assert d.rejection is not None and d.rejection.constraint == "bandwidth"
    d = decide(st, req("w", (DB,), (Demand("u", "db", 900, to_site="C"),), pin_b))
    assert d.kind is Kind.PLACED and any("D" in p.sites for p in d.paths)  # through CH
    assert sum(p.bandwidth_mbps for p in d.paths) == pytest.approx(900)
    assert not st.apply(d).over_reserved()


def test_diversity_needs_two_link_disjoint_paths(state: State) -> None:
    us = Rules.of(vm_jurisdictions=["US"])
    d = decide(state, req("w", (DB,), (Demand("u", "db", 10, to_site="A", diverse=True),), us))
    assert d.rejection is not None and d.rejection.constraint == "diversity"
    de = Rules.of(vm_jurisdictions=["DE"])
    d = decide(state, req("w", (DB,), (Demand("u", "db", 100, to_site="C", diverse=True),), de))
    assert d.kind is Kind.PLACED and len(d.paths) == 2
    assert set(d.paths[0].links).isdisjoint(d.paths[1].links)
    assert all(p.bandwidth_mbps == 100 for p in d.paths)


def test_invalid_request_is_rejected_not_raised(state: State) -> None:
    d = decide(state, req("w", (DB,), (Demand("u", "nope", 10, to_site="A"),)))
    assert d.rejection is not None and d.rejection.constraint == "invalid_request"
    d = decide(state, req("w", (DB,), (Demand("u", "db", 10, to_site="ZZ"),)))
    assert d.rejection is not None and d.rejection.constraint == "invalid_request"


def test_explanation_lists_alternatives_and_why_they_lost(state: State) -> None:
    r = req("w", (WEB, DB), (Demand("d", "web", 400, to_group="db"),
                             Demand("u", "db", 100, to_site="A")),
            Rules.of(vm_jurisdictions=["EU"], anti_affinity=(("web", "db"),)))
    d = decide(state, r)
    alts = d.explanation.alternatives
    assert len(alts) >= 3
    assert alts[0].lost_because == "" and dict(alts[0].placements) == d.site_of
    assert all(a.lost_because for a in alts[1:])
    assert all(a.score >= alts[0].score for a in alts[1:] if not a.lost_because.startswith("inf"))


def test_same_input_same_decision(state: State) -> None:
    r = req("w", (WEB, DB, VmGroup("c", 1, 2, 2)),
            (Demand("d", "web", 400, to_group="db"), Demand("e", "db", 200, to_group="c"),
             Demand("u", "c", 100, to_site="E")),
            Rules.of(anti_affinity=(("web", "db", "c"),)))
    a = decide(state, r)
    b = decide(State.empty(five_sites()), r)
    assert a == b and a.explanation == b.explanation


def test_user_location_enters_at_the_nearest_site() -> None:
    topo = five_sites()
    topo = topo.with_site(replace(topo.sites["A"], latitude=50.1, longitude=8.7))
    for sid in "BCDE":
        topo = topo.with_site(replace(topo.sites[sid], latitude=10.0, longitude=-60.0))
    loc = Location(50.0, 8.5, "Frankfurt")
    eu = Rules.of(vm_jurisdictions=["FR"])
    d = decide(State.empty(topo), req("w", (DB,), (Demand("u", "db", 10, to_location=loc),), eu))
    assert d.kind is Kind.PLACED and d.paths[0].sites[-1] == "A"
    assert d.max_latency_ms > d.paths[0].latency_ms  # access latency added


def test_change_request_replaces_the_old_placement(state: State) -> None:
    r = req("w", (DB,), rules=Rules.of(vm_jurisdictions=["EU"]))
    st = state.apply(decide(state, r))
    d2 = decide(st, replace(r, rules=Rules.of(vm_jurisdictions=["DE"])))
    st2 = st.apply(d2)
    assert d2.site_of == {"db": "B"}
    assert set(st2.site_used) == {"B"}
