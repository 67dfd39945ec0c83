"""Reaction to failures, degradations and fades, and SWAN-style re-optimisation."""

from __future__ import annotations

from dataclasses import replace

from joint_fixtures import five_sites

from tandem.engine.baselines import decide_nova_sp
from tandem.engine.decide import decide
from tandem.engine.decision import Action, Kind
from tandem.engine.react import fail_link, react
from tandem.engine.reoptimise import reoptimise
from tandem.engine.state import State
from tandem.engine.topology import CapacityWindow, SiteState
from tandem.engine.workload import Demand, Priority, Rules, VmGroup, WorkloadRequest

G = VmGroup("g", 1, 2, 2)


def admit(state: State, *reqs: WorkloadRequest) -> State:
    for r in reqs:
        d = decide(state, r)
        assert d.kind is Kind.PLACED, d.rejection
        state = state.apply(d)
    return state


def one(wid: str, to: str, bw: float, rules: Rules, prio: Priority = Priority.STANDARD,
        lat: float = 0.0) -> WorkloadRequest:
    return WorkloadRequest(wid, (G,), (Demand("u", "g", bw, to_site=to, max_latency_ms=lat),),
                           rules, priority=prio)


def test_reroute_keeps_sites_and_is_make_before_break() -> None:
    st = admit(State.empty(five_sites()), one("w", "C", 500, Rules.of(vm_jurisdictions=["DE"])))
    before = st.workloads["w"]
    (link,) = before.paths[0].links if len(before.paths[0].links) == 1 else ("ab",)
    r = fail_link(st, link)
    (d,) = r.decisions
    assert d.kind is Kind.REROUTED and d.site_of == before.site_of
    assert all(link not in p.links for p in d.paths)
    assert sum(p.bandwidth_mbps for p in d.paths) == 500
    assert {p.reservation_id for p in d.paths}.isdisjoint({p.reservation_id for p in before.paths})
    actions = [s.action for s in r.change_set]
    # The dead path goes first (it carries nothing), then the new paths are added.
    assert actions[0] is Action.REMOVE_PATH and Action.ADD_PATH in actions
    assert not r.state.over_reserved()


def test_migration_when_no_reroute_meets_the_latency_bound() -> None:
    r = WorkloadRequest("w", (VmGroup("web", 1, 8, 8), VmGroup("db", 1, 8, 8)),
                        (Demand("d", "web", 300, to_group="db", max_latency_ms=3.5),),
                        Rules.of(vm_jurisdictions=["DE", "FR", "CH"],
                                 anti_affinity=(("web", "db"),)))
    st = admit(State.empty(five_sites()), r)
    before = st.workloads["w"]
    (link,) = before.paths[0].links
    out = fail_link(st, link)
    (d,) = out.decisions
    assert d.kind in (Kind.MIGRATED, Kind.REROUTED_AND_MIGRATED)
    assert d.site_of != before.site_of
    assert all(p.latency_ms <= 3.5 for p in d.paths) and d.paths
    acts = [s.action for s in out.change_set]
    assert Action.MIGRATE_VM in acts
    # Make-before-break: new paths come before the migration, which comes before the removal
    # of any old path that is still alive.
    assert acts.index(Action.ADD_PATH) < acts.index(Action.MIGRATE_VM)


def test_critical_workload_preempts_best_effort() -> None:
    de = Rules.of(vm_jurisdictions=["DE"])
    st = admit(State.empty(five_sites()), one("x", "C", 600, de, Priority.CRITICAL),
               one("low", "C", 900, de, Priority.BEST_EFFORT))
    assert "bc" in st.workloads["x"].paths[0].links
    r = fail_link(st, "bc")
    kinds = {d.workload_id: d.kind for d in r.decisions}
    assert kinds["low"] is Kind.PREEMPTED
    x = next(d for d in r.decisions if d.workload_id == "x")
    assert x.preempted == ("low",) and x.kind is Kind.REROUTED
    assert "low" not in r.state.workloads and not r.state.over_reserved()
    steps = [(s.workload_id, s.action) for s in r.change_set]
    assert steps.index(("low", Action.REMOVE_PATH)) < steps.index(("x", Action.ADD_PATH))


def test_degraded_with_reason_when_nothing_is_feasible() -> None:
    st = admit(State.empty(five_sites()), one("w", "C", 100, Rules.of(vm_jurisdictions=["US"])))
    r = fail_link(st, "ce")
    (d,) = r.decisions
    assert d.kind is Kind.DEGRADED and d.paths == () and d.site_of == {"g": "E"}
    assert "u" in d.explanation.summary and "unserved" in d.explanation.summary
    assert r.state.workloads["w"].kind is Kind.DEGRADED


def test_known_satellite_fade_sheds_lowest_priority_first() -> None:
    topo = five_sites()
    sat = replace(topo.links["ce"], capacity_schedule=(CapacityWindow(100.0, 200.0, 120.0),))
    topo = topo.with_link(sat)
    us = Rules.of(vm_jurisdictions=["US"])
    st = admit(State.empty(topo, at=0.0), one("crit", "C", 100, us, Priority.CRITICAL),
               one("be", "C", 90, us, Priority.BEST_EFFORT))
    r = react(st, topo, at=150.0)
    assert r.affected == ("be",)
    assert r.state.workloads["crit"] == st.workloads["crit"]
    assert r.state.workloads["be"].kind is Kind.DEGRADED
    assert not r.state.over_reserved()
    # After the window the capacity is back: nothing to do.
    assert react(st, topo, at=250.0).decisions == ()


def test_reoptimise_raises_headroom_in_safe_stages() -> None:
    topo = five_sites()
    topo = topo.with_site(replace(topo.sites["A"], vcpus=0))  # everything starts at B
    st = State.empty(topo)
    de = Rules.of(vm_jurisdictions=["DE"])
    for i in range(4):
        d = decide_nova_sp(st, one(f"w{i}", "C", 200, de))
        assert d.kind is Kind.PLACED
        st = st.apply(d)
    plan = reoptimise(st)
    assert plan.max_util_after < plan.max_util_before
    assert plan.stages and not plan.dropped
    assert not plan.state.over_reserved()
    add_first = [s.action for s in plan.change_set[: len(plan.stages[0])]]
    assert all(a is Action.ADD_PATH for a in add_first)


def test_site_down_restarts_its_groups_elsewhere_and_removed_link_counts_as_down() -> None:
    r = WorkloadRequest("w", (VmGroup("web", 1, 4, 4), VmGroup("db", 1, 4, 4)),
                        (Demand("d", "web", 300, to_group="db"),),
                        Rules.of(vm_jurisdictions=["DE", "FR"], anti_affinity=(("web", "db"),)))
    st = admit(State.empty(five_sites()), r)
    before = st.workloads["w"]
    victim_site = before.site_of["db"]
    topo = st.topology.with_site(replace(st.topology.sites[victim_site],
                                         state=SiteState.DOWN))
    out = react(st, topo)
    (d,) = out.decisions
    assert d.kind is Kind.MIGRATED and victim_site not in d.site_of.values()
    assert d.site_of["web"] == before.site_of["web"]  # only the stranded group moves
    acts = [(s.action, s.group_id) for s in out.change_set if s.group_id]
    assert acts == [(Action.START_VM, "db"), (Action.STOP_VM, "db")]
    assert not out.state.over_reserved()
    # A link removed from the inventory is handled like a failed one.
    (link,) = d.paths[0].links if len(d.paths) == 1 and len(d.paths[0].links) == 1 else ("ab",)
    gone = react(out.state, out.state.topology.without_link(link))
    assert all(link not in p.links for w in gone.state.workloads.values() for p in w.paths)


def test_known_fades_are_listed_in_advance() -> None:
    from tandem.engine.react import capacity_changes

    topo = five_sites()
    sat = replace(topo.links["ce"], capacity_schedule=(CapacityWindow(100.0, 200.0, 120.0),
                                                       CapacityWindow(300.0, 310.0, 0.0)))
    topo = topo.with_link(sat)
    assert capacity_changes(topo, 0.0, 1000.0) == [100.0, 200.0, 300.0, 310.0]
    assert capacity_changes(topo, 100.0, 250.0) == [200.0]


def test_a_draining_site_has_its_groups_live_migrated_make_before_break() -> None:
    r = WorkloadRequest("w", (VmGroup("web", 1, 4, 4), VmGroup("db", 1, 4, 4)),
                        (Demand("d", "web", 300, to_group="db"),),
                        Rules.of(vm_jurisdictions=["DE", "FR"], anti_affinity=(("web", "db"),)))
    st = admit(State.empty(five_sites()), r)
    before = st.workloads["w"]
    site = before.site_of["db"]
    topo = st.topology.with_site(replace(st.topology.sites[site], state=SiteState.DRAINING))
    out = react(st, topo)
    (d,) = out.decisions
    assert d.kind is Kind.MIGRATED and site not in d.site_of.values()
    assert "draining" in d.explanation.summary
    assert d.site_of["web"] == before.site_of["web"]  # only the group on the site moves
    acts = [(s.action, s.group_id) for s in out.change_set if s.group_id]
    assert acts == [(Action.MIGRATE_VM, "db")]  # live: the site still runs it meanwhile
    assert not out.state.over_reserved()
    # Reacting again to the same (still draining) topology moves nothing more.
    assert react(out.state, topo).decisions == ()


def test_a_draining_site_with_nowhere_to_go_keeps_the_workload_and_says_so() -> None:
    st = admit(State.empty(five_sites()), one("w", "C", 10, Rules.of(vm_jurisdictions=["CH"])))
    before = st.workloads["w"]
    assert set(before.site_of.values()) == {"D"}  # the only CH site
    topo = st.topology.with_site(replace(st.topology.sites["D"], state=SiteState.DRAINING))
    out = react(st, topo)
    (d,) = out.decisions
    assert d.kind is Kind.DEGRADED and "left in place on D" in d.explanation.summary
    assert d.site_of == before.site_of and d.paths == before.paths
    assert not [s for s in out.change_set if s.workload_id == "w"]
