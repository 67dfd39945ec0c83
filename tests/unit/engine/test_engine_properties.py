"""Property-based tests (hypothesis) of the engine's invariants over random federations and
random request streams, through admissions, releases, link failures, degradations and
re-optimisation:

- no link direction and no site is ever over-reserved;
- no VM lands in a forbidden jurisdiction, no reserved path crosses one;
- latency bounds hold; every path is contiguous from the source site to the target site;
- every demand of an admitted workload gets its bandwidth (twice, link-disjoint, if diverse);
- releasing everything returns the state to empty; the same input gives the same decision.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joint_fixtures import random_topology

from tandem.engine.baselines import decide_nova_cspf, decide_nova_sp
from tandem.engine.decide import decide
from tandem.engine.decision import Decision, Kind
from tandem.engine.jurisdiction import normalise
from tandem.engine.react import degrade_link, fail_link
from tandem.engine.reoptimise import reoptimise
from tandem.engine.state import EPS, State
from tandem.engine.workgen import generate

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def check_decision(state: State, dec: Decision) -> None:
    topo = state.topology
    req = dec.request
    assert req is not None
    site = dec.site_of
    assert set(site) == {g.group_id for g in req.groups}
    for g in req.groups:
        s = topo.sites[site[g.group_id]]
        if req.rules.vm_jurisdictions:
            assert normalise(s.jurisdiction) in req.rules.vm_jurisdictions
        if g.hypervisor:
            assert g.hypervisor in s.hypervisors
    for aa in req.rules.anti_affinity:
        assert len({site[g] for g in aa}) == len(aa)
    by_demand: dict[str, list[float]] = {}
    for p in dec.paths:
        d = next(x for x in req.demands if x.demand_id == p.demand_id)
        assert p.sites[0] == site[d.from_group]
        assert p.sites[-1] == (site[d.to_group] if d.to_group else d.to_site)
        assert len(p.links) == len(p.sites) - 1 and len(set(p.sites)) == len(p.sites)
        lat = 0.0
        for i, lid in enumerate(p.links):
            ln = topo.links[lid]
            assert {ln.a, ln.b} == {p.sites[i], p.sites[i + 1]}
            lat += ln.latency_ms
            if req.rules.transit_jurisdictions:
                crossed = {normalise(c) for c in ln.jurisdictions}
                crossed |= {normalise(topo.sites[x].jurisdiction) for x in (ln.a, ln.b)}
                assert crossed <= req.rules.transit_jurisdictions
        assert abs(lat - p.latency_ms) < 1e-6
        if d.max_latency_ms > 0:
            assert p.latency_ms <= d.max_latency_ms + 1e-6
        by_demand.setdefault(d.demand_id, []).append(p.bandwidth_mbps)
    if dec.kind is Kind.DEGRADED:
        return
    for d in req.demands:
        src = site[d.from_group]
        dst = site[d.to_group] if d.to_group else d.to_site
        if src == dst:
            continue
        bws = by_demand.get(d.demand_id, [])
        if d.diverse:
            paths = [p for p in dec.paths if p.demand_id == d.demand_id]
            assert len(paths) == 2 and set(paths[0].links).isdisjoint(paths[1].links)
            assert all(abs(b - d.bandwidth_mbps) < 1e-6 for b in bws)
        else:
            assert abs(sum(bws) - d.bandwidth_mbps) < 1e-6


def check_state(state: State) -> None:
    assert not state.over_reserved()
    used = [0.0] * len(state.used)
    for dec in state.workloads.values():
        check_decision(state, dec)
        for r in dec.paths:
            for e in state._dirs(r):
                used[e] += r.bandwidth_mbps
    assert all(abs(a - b) < 1e-6 for a, b in zip(used, state.used))
    for sid, u in state.site_used.items():
        s = state.topology.sites[sid]
        assert u[0] <= s.vcpus + EPS and u[1] <= s.memory_gib + EPS
        assert u[2] <= s.storage_gib + EPS


def admit_stream(seed: int, n: int, engine=decide) -> State:  # type: ignore[no-untyped-def]
    topo = random_topology(seed, 5 + seed % 4)
    state = State.empty(topo)
    for r in generate(topo, n, seed, bw_low=0.05, bw_high=0.4, residency_share=0.4,
                      transit_share=0.3, diverse_share=0.2):
        d = engine(state, r)
        if d.admitted:
            check_decision(state, d)
            state = state.apply(d)
            check_state(state)
        else:
            assert d.rejection is not None and d.rejection.constraint
    return state


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 25))
def test_admissions_keep_every_invariant(seed: int, n: int) -> None:
    admit_stream(seed, n)


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 15))
def test_baselines_keep_every_invariant(seed: int, n: int) -> None:
    admit_stream(seed, n, decide_nova_sp)
    admit_stream(seed, n, decide_nova_cspf)


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 20), order=st.randoms(use_true_random=False))
def test_releasing_everything_returns_to_empty(seed: int, n: int, order: random.Random) -> None:
    state = admit_stream(seed, n)
    ids = sorted(state.workloads)
    order.shuffle(ids)
    for wid in ids:
        state = state.release(wid)
        check_state(state)
    empty = State.empty(state.topology)
    assert state.is_empty()
    assert state.used == empty.used and dict(state.site_used) == {} and dict(state.workloads) == {}


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 20))
def test_decisions_are_deterministic(seed: int, n: int) -> None:
    topo = random_topology(seed)
    reqs = generate(topo, n, seed, bw_low=0.05, bw_high=0.4)
    a, b = State.empty(topo), State.empty(random_topology(seed))
    for r in reqs:
        da, db = decide(a, r), decide(b, r)
        assert da == db and da.explanation == db.explanation
        a, b = a.apply(da), b.apply(db)


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(3, 25), pick=st.integers(0, 100),
       factor=st.sampled_from([0.0, 0.2, 0.5]))
def test_reaction_to_failure_or_degradation_keeps_every_invariant(
    seed: int, n: int, pick: int, factor: float
) -> None:
    state = admit_stream(seed, n)
    links = sorted(state.topology.links)
    lid = links[pick % len(links)]
    r = fail_link(state, lid) if factor == 0.0 else degrade_link(state, lid, factor)
    check_state(r.state)
    if factor == 0.0:
        assert all(lid not in p.links for d in r.state.workloads.values() for p in d.paths)
    for d in r.decisions:
        assert d.kind in (Kind.REROUTED, Kind.MIGRATED, Kind.REROUTED_AND_MIGRATED,
                          Kind.PREEMPTED, Kind.DEGRADED)
    # Make-before-break: replaying the change set never over-fills a live link direction.
    _replay_change_set(state, r)


def _replay_change_set(before: State, r) -> None:  # type: ignore[no-untyped-def]
    after = r.state
    net = after.net
    res_by_id = {p.reservation_id: p for d in before.workloads.values() for p in d.paths}
    res_by_id |= {p.reservation_id: p for d in after.workloads.values() for p in d.paths}
    for d in r.decisions:
        for p in d.paths:
            res_by_id[p.reservation_id] = p
    live = {p.reservation_id for d in before.workloads.values() for p in d.paths}
    used = [0.0] * len(net.cap)
    for rid in live:
        for e in after._dirs(res_by_id[rid]):
            used[e] += res_by_id[rid].bandwidth_mbps
    for step in r.change_set:
        p = res_by_id.get(step.reservation_id)
        if step.action.value == "add_path":
            assert p is not None
            for e in after._dirs(p):
                used[e] += p.bandwidth_mbps
                assert used[e] <= net.cap[e] + 1e-6, f"{step} over-fills direction {e}"
        elif step.action.value == "remove_path":
            assert p is not None
            for e in after._dirs(p):
                used[e] -= p.bandwidth_mbps


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(3, 25))
def test_reoptimisation_stages_never_exceed_capacity(seed: int, n: int) -> None:
    state = admit_stream(seed, n)
    plan = reoptimise(state, max_moves=10)
    check_state(plan.state)
    cur = list(state.used)
    cap = state.net.cap
    for stage in plan.stages:
        for m in stage:  # all additions of a stage first (worst case)
            for e in m.new.dirs:
                if e not in m.old.dirs:
                    cur[e] += m.new.bandwidth_mbps
        assert all(u <= c + 1e-6 for u, c in zip(cur, cap))
        for m in stage:
            for e in m.old.dirs:
                if e not in m.new.dirs:
                    cur[e] -= m.old.bandwidth_mbps
    assert plan.max_util_after <= plan.max_util_before + 1e-9


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(3, 20), pick=st.integers(0, 100))
def test_reaction_to_a_site_going_down_keeps_every_invariant(seed: int, n: int, pick: int) -> None:
    from dataclasses import replace

    from tandem.engine.react import react
    from tandem.engine.topology import SiteState

    state = admit_stream(seed, n)
    sites = sorted(state.topology.sites)
    down = sites[pick % len(sites)]
    topo = state.topology.with_site(replace(state.topology.sites[down], state=SiteState.DOWN))
    r = react(state, topo)
    check_state(r.state)
    for d in r.state.workloads.values():
        if d.kind is not Kind.DEGRADED:
            assert down not in d.site_of.values()
            assert all(down not in p.sites for p in d.paths)
    _replay_change_set(state, r)
