"""Reaction to a link failure, a degradation or a capacity change (a known satellite fade too).

Given the state and the changed topology (and the instant, for capacity windows), find the
link directions now carrying more than they can, pick the workloads to move (all of them on a
dead link; on a degraded one the lowest priority first until it fits), and for each — most
important first — choose the cheapest feasible response:

- reroute: keep the sites, re-route only the demands whose paths broke;
- migrate / both: re-decide the sites with a migration cost per vCPU moved (the joint search,
  with the groups' current sites preferred); on WANs of more than `Config.small_sites` sites
  only when no reroute is feasible (see `_respond`);
- preempt: release lower-priority workloads (fewest, lowest priority first) and reroute;
- otherwise degraded: keep the VMs, drop the broken reservations, and say why.

Every response is computed make-before-break: the workload's healthy old paths and VMs stay
counted while its new ones are placed, so executing the change set in order (remove paths that
are already dead, preempt, add new paths, migrate VMs, remove old paths) never over-fills a
link or a site, and every new path and site obeys the workload's residency and latency rules.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .decide import DEFAULT, Config, Solver
from .decision import Action, ChangeStep, Decision, Explanation, Kind, Reservation, succeed
from .routing import EPS, Fail, commit, route_demand
from .state import State
from .topology import OperState, SiteState, Topology


@dataclass(frozen=True, slots=True)
class Reaction:
    state: State
    decisions: tuple[Decision, ...]
    change_set: tuple[ChangeStep, ...]
    affected: tuple[str, ...]


def fail_link(state: State, link_id: str, config: Config = DEFAULT) -> Reaction:
    topo = state.topology
    link = replace(topo.links[link_id], oper_state=OperState.DOWN)
    return react(state, topo.with_link(link), state.net.at, config)


def degrade_link(state: State, link_id: str, factor: float, config: Config = DEFAULT) -> Reaction:
    topo = state.topology
    link = replace(topo.links[link_id], oper_state=OperState.DEGRADED, capacity_factor=factor)
    return react(state, topo.with_link(link), state.net.at, config)


def capacity_changes(topology: Topology, start: float, end: float) -> list[float]:
    """Instants in (start, end] where a known capacity window opens or closes (satellite fades,
    contact windows), sorted: calling `react(state, topology, t)` ahead of each gives the
    change set to apply when the fade begins, before any packet is lost."""
    out: set[float] = set()
    for ln in topology.links.values():
        for w in ln.capacity_schedule:
            out |= {t for t in (w.start, w.end) if start < t <= end}
    return sorted(out)


def react(state: State, topology: Topology, at: float | None = None,
          config: Config = DEFAULT) -> Reaction:
    """Fold a topology change into the state and move what no longer fits.

    A link removed from the inventory is treated as down, a site removed or down forces its
    workloads' groups elsewhere (restarted, not live-migrated: the site is gone). A site that
    starts draining (maintenance) has its groups live-migrated elsewhere, make-before-break,
    before the element goes; a group that fits nowhere else stays, and the decision says so.
    """
    for lid, ln in state.topology.links.items():
        if lid not in topology.links:
            topology = topology.with_link(replace(ln, oper_state=OperState.DOWN))
    st = state.with_topology(topology, at)
    gone = {sid for sid in state.topology.sites
            if sid not in topology.sites or topology.sites[sid].state is SiteState.DOWN}
    leaving = {sid for sid, s in topology.sites.items() if s.state is SiteState.DRAINING
               and sid in state.topology.sites
               and state.topology.sites[sid].state is not SiteState.DRAINING}
    over = set(st.over_reserved())
    affected = _pick_affected(st, over)
    stranded = sorted(w for w, d in st.workloads.items()
                      if w not in affected and any(s in gone | leaving for _, s, _ in d.placements)
                      ) if gone or leaving else []
    decisions: list[Decision] = []
    steps: list[ChangeStep] = []
    order = sorted(affected + stranded, key=lambda w: (-st.workloads[w].priority, w))
    # Capacities are fixed for the whole reaction, and every move is make-before-break (it
    # only adds load where it fits), so only directions over capacity at the start can be
    # over later: both sets are computed once, not per workload.
    dead = {e for e, c in enumerate(st.net.cap) if c <= EPS}
    for wid in order:
        old = st.workloads.get(wid)
        if old is None:  # preempted by a more important workload earlier in this reaction
            continue
        now_over = {e for e in over if st.used[e] > st.net.cap[e] + EPS}
        broken = {r.reservation_id for r in old.paths if now_over.intersection(st._dirs(r))}
        outcome: tuple[Decision, tuple[str, ...]]
        if any(s in gone for _, s, _ in old.placements):
            outcome = (_evacuate(st, old, gone, dead, config), ())
        elif any(s in leaving for _, s, _ in old.placements):
            outcome = (_evacuate(st, old, set(), dead, config, leaving), ())
        elif not broken:  # earlier moves in this reaction already made room
            continue
        else:
            outcome = _respond(st, old, broken, dead, config)
        for victim in outcome[1]:
            v = st.workloads[victim]
            vd = Decision(Kind.PREEMPTED, victim, v.tenant, v.request_id,
                          explanation=Explanation(f"preempted for {wid} (priority "
                                                  f"{v.priority.name} < {old.priority.name})"),
                          request=v.request)
            decisions.append(vd)
            steps += [ChangeStep(Action.REMOVE_PATH, victim, r.reservation_id) for r in v.paths]
            steps += [ChangeStep(Action.STOP_VM, victim, group_id=g, from_site=s)
                      for g, s, _ in v.placements]
            st = st.apply(vd)
        new = outcome[0]
        decisions.append(new)
        steps += _changes(st, old, new, dead, gone)
        st = st.apply(new)
    return Reaction(st, tuple(decisions), tuple(steps), tuple(order))


def _pick_affected(st: State, over: set[int]) -> list[str]:
    excess = {e: st.used[e] - st.net.cap[e] for e in over}
    touching: list[tuple[int, float, str]] = []
    load: dict[str, dict[int, float]] = {}
    users = st.users()  # only the workloads on an over-full direction, not all of them
    for wid in sorted(set().union(*(users.get(e, ()) for e in over))):
        dec = st.workloads[wid]
        on: dict[int, float] = {}
        for r in dec.paths:
            for e in st._dirs(r):
                if e in over:
                    on[e] = on.get(e, 0.0) + r.bandwidth_mbps
        if on:
            load[wid] = on
            touching.append((int(dec.priority), -sum(on.values()), wid))
    out: list[str] = []
    for _, _, wid in sorted(touching):
        if all(x <= EPS for x in excess.values()):
            break
        if any(excess[e] > EPS for e in load[wid]):
            out.append(wid)
            for e, bw in load[wid].items():
                excess[e] -= bw
    return out


def _respond(st: State, old: Decision, broken: set[str], dead: set[int],
             cfg: Config) -> tuple[Decision, tuple[str, ...]]:
    req = old.request
    assert req is not None
    # Paths over a dead link carry nothing: they are removed first, freeing their other hops.
    alive = tuple(r for r in old.paths if not dead.intersection(st._dirs(r)))
    mbb = st.apply(replace(old, paths=alive))
    current = old.site_of
    options: list[tuple[float, Decision]] = []
    rr = _reroute(mbb, old, broken, cfg)
    if isinstance(rr, Decision):
        options.append((rr.score, rr))
    # Any migration moves a group, so it scores at least the migration cost of the smallest
    # group (costs and network usage are non-negative): a cheaper reroute needs no search.
    # Beyond `small_sites` a feasible reroute is taken without searching migrations at all:
    # each would be a joint search (milliseconds on a 1,000-site WAN) for every affected
    # workload, and moving VMs during a failure is the last resort there; the re-optimiser
    # can move them later, off the critical path.
    least_move = cfg.migration_cost_per_vcpu * min(g.count * g.vcpus for g in req.groups)
    compare = len(mbb.net.site_ids) <= cfg.small_sites
    mig = (Solver(mbb, req, cfg, current=current).solve()
           if not isinstance(rr, Decision) or (compare and rr.score >= least_move) else None)
    if mig is not None and mig.kind is Kind.PLACED and mig.site_of != current:
        fin = _finish(mig, old)
        olds = {r.reservation_id for r in old.paths}
        kind = (Kind.MIGRATED if all(r.reservation_id in olds for r in fin.paths)
                else Kind.REROUTED_AND_MIGRATED)
        options.append((fin.score, replace(fin, kind=kind)))
    if options:
        options.sort(key=lambda t: (t[0], t[1].kind.value))
        return options[0][1], ()
    reason = rr if isinstance(rr, str) else "bandwidth"
    # Preempt lower-priority workloads sharing links with the broken demands' candidates.
    victims: list[str] = []
    trial = mbb
    for _, wid in _victims(mbb, old, broken):
        victims.append(wid)
        trial = trial.release(wid)
        rr = _reroute(trial, old, broken, cfg)
        if isinstance(rr, Decision):
            return replace(rr, preempted=tuple(victims), explanation=Explanation(
                rr.explanation.summary + f"; preempted {', '.join(victims)}")), tuple(victims)
        if len(victims) >= 5:
            break
    kept = tuple(r for r in old.paths if r.reservation_id not in broken)
    lost = sorted({r.demand_id for r in old.paths if r.reservation_id in broken})
    return replace(old, kind=Kind.DEGRADED, paths=kept, revision=old.revision + 1,
                   explanation=Explanation(
                       f"degraded: demands {', '.join(lost)} unserved: {reason}; neither "
                       "reroute, migration nor preemption is feasible")), ()


def _evacuate(st: State, old: Decision, gone: set[str], dead: set[int],
              cfg: Config, leaving: set[str] | frozenset[str] = frozenset()) -> Decision:
    """Groups on a down site must move, groups on a draining one are moved: re-decide jointly,
    preferring the other groups' sites. The draining site still runs its VMs and carries
    traffic until they have moved (make-before-break), so its paths stay counted meanwhile."""
    req = old.request
    assert req is not None
    alive = tuple(r for r in old.paths if not dead.intersection(st._dirs(r))
                  and not gone.intersection(r.sites))
    mbb = st.apply(replace(old, paths=alive))
    away = gone | set(leaving)
    current = {g: s for g, s in old.site_of.items() if s not in away}
    new = Solver(mbb, req, cfg, current=current).solve()
    where = ", ".join(sorted(away & set(old.site_of.values())))
    why = f"site {where} {'down' if gone else 'draining'}"
    if new.kind is Kind.PLACED and not away & set(new.site_of.values()):
        fin = _finish(new, old)
        return replace(fin, kind=Kind.MIGRATED, explanation=Explanation(
            f"{why}: " + fin.explanation.summary, fin.explanation.alternatives))
    failed = (f"{new.rejection.constraint}: {new.rejection.detail}" if new.rejection is not None
              else f"the only placement found keeps a group on {where}")
    if not gone:  # draining: nothing is broken, the workload stays where it runs
        return replace(old, kind=Kind.DEGRADED, revision=old.revision + 1,
                       explanation=Explanation(f"{why}, but no feasible placement elsewhere "
                                               f"({failed}): left in place on {where}"))
    return replace(old, kind=Kind.DEGRADED, paths=alive, revision=old.revision + 1,
                   explanation=Explanation(
                       f"degraded: {why} and no feasible new placement: {failed}"))


def _reroute(mbb: State, old: Decision, broken: set[str], cfg: Config) -> Decision | str:
    """Keep sites, re-route the broken demands on the residual (old healthy paths counted)."""
    req = old.request
    assert req is not None
    sv = Solver(mbb, req, cfg)
    res = mbb.residual()
    # A broken reservation still counted in mbb (degraded, not dead) is released by the move
    # only after the new path is up, so its bandwidth is NOT given back here.
    demands = sorted({r.demand_id for r in old.paths if r.reservation_id in broken})
    site = old.site_of
    routes = []
    for did in demands:
        di = next(i for i, d in enumerate(req.demands) if d.demand_id == did)
        d, t = req.demands[di], sv.targets[di]
        if t.error:
            return f"location: demand {did!r}: {t.error}"
        src = sv.net.index[site[d.from_group]]
        dst = sv.net.index[site[d.to_group]] if d.to_group else t.site
        r = route_demand(sv.net, res, sv.w, src, dst, d.bandwidth_mbps, d.max_latency_ms,
                         sv.transit, d.diverse, t.access_ms, cfg.network_weight, sv.pwc)
        if isinstance(r, Fail):
            return f"{r.constraint}: demand {did!r}: {r.detail}"
        commit(res, r)
        routes.append((di, r))
    # Every path of a broken demand is replaced (a diverse pair is re-chosen as a pair).
    kept = tuple(r for r in old.paths if r.demand_id not in demands)
    new = sv.reservations(routes, old.revision + 1)
    cost = old.cost - sum(r.bandwidth_mbps * _cpm(mbb, r) for r in old.paths
                          if r.demand_id in demands) + sum(r.cost for _, r in routes)
    ceiling = req.rules.cost_ceiling
    if ceiling > 0 and cost > ceiling + EPS:
        return f"cost_ceiling: reroute costs {cost:.3f} > {ceiling:.3f}"
    kept_w = sum(r.bandwidth_mbps * sum(sv.w[e] for e in mbb._dirs(r)) for r in kept)
    score = cost + cfg.network_weight * (kept_w + sum(r.weight for _, r in routes))
    lat = max([r.latency_ms for r in kept] + [r.latency_ms for _, r in routes] + [0.0])
    dec = replace(old, kind=Kind.REROUTED, paths=kept + new, cost=cost, score=score,
                  max_latency_ms=lat, revision=old.revision + 1,
                  explanation=Explanation(f"rerouted {', '.join(demands)} keeping every site"))
    return dec


def _cpm(st: State, r: Reservation) -> float:
    return sum(st.topology.links[lid].cost_per_mbps for lid in r.links if lid in st.topology.links)


def _finish(mig: Decision, old: Decision) -> Decision:
    """The migration as `old`'s successor (`succeed`), its explanation naming the moves."""
    moved = [f"{g}: {old.site_of[g]}→{s}" for g, s, _ in mig.placements if old.site_of[g] != s]
    return replace(succeed(mig, old),
                   explanation=Explanation(f"migrate {', '.join(moved)}; "
                                           + mig.explanation.summary, mig.explanation.alternatives))


def _victims(st: State, old: Decision, broken: set[str]) -> list[tuple[tuple[int, float, str], str]]:
    req = old.request
    assert req is not None
    sv = Solver(st, req, DEFAULT)
    site = old.site_of
    dirs: set[int] = set()
    for r in old.paths:
        if r.reservation_id in broken:
            d = next(x for x in req.demands if x.demand_id == r.demand_id)
            src = sv.net.index[site[d.from_group]]
            di = req.demands.index(d)
            dst = sv.net.index[site[d.to_group]] if d.to_group else sv.targets[di].site
            if dst < 0:
                continue
            for p in sv.net.paths(src, dst):
                dirs |= set(p.dirs)
    out = []
    users = st.users()  # the workloads on those directions, not all of them
    for wid in sorted(set().union(*(users.get(e, ()) for e in dirs))):
        dec = st.workloads[wid]
        if wid == old.workload_id or dec.priority >= old.priority:
            continue
        share = sum(r.bandwidth_mbps for r in dec.paths if dirs.intersection(st._dirs(r)))
        if share > 0:
            out.append(((int(dec.priority), -share, wid), wid))
    out.sort()
    return out


def _changes(st: State, old: Decision, new: Decision, dead: set[int],
             gone: set[str]) -> list[ChangeStep]:
    """Make-before-break order: dead paths out, new VMs and paths in, old ones out last."""
    wid = old.workload_id
    old_ids = {r.reservation_id for r in old.paths}
    new_ids = {r.reservation_id for r in new.paths}
    removed = [r for r in old.paths if r.reservation_id not in new_ids]
    broken = [r for r in removed if dead.intersection(st._dirs(r)) or gone.intersection(r.sites)]
    last = [r for r in removed if r not in broken]
    osite = old.site_of
    moved = [(g, osite[g], s) for g, s, _ in new.placements if osite.get(g) != s]
    steps = [ChangeStep(Action.REMOVE_PATH, wid, r.reservation_id) for r in broken]
    steps += [ChangeStep(Action.START_VM, wid, group_id=g, to_site=s)
              for g, f, s in moved if f in gone]
    steps += [ChangeStep(Action.ADD_PATH, wid, r.reservation_id) for r in new.paths
              if r.reservation_id not in old_ids]
    steps += [ChangeStep(Action.MIGRATE_VM, wid, group_id=g, from_site=f, to_site=s)
              for g, f, s in moved if f not in gone]
    steps += [ChangeStep(Action.REMOVE_PATH, wid, r.reservation_id) for r in last]
    steps += [ChangeStep(Action.STOP_VM, wid, group_id=g, from_site=f)
              for g, f, _ in moved if f in gone]
    return steps
