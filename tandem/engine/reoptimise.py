"""On-demand re-optimisation: re-route reservations off the most loaded links, in safe stages.

Admission is online, so after a while some links run hot while detours idle. `reoptimise`
repeatedly takes the most utilised link direction and moves one reservation crossing it to the
candidate path (obeying the workload's latency, transit and diversity rules) that lowers the
worst utilisation it touches, until no move helps or `max_moves` is reached.

The moves are then staged as SWAN does (Hong et al., SIGCOMM 2013): within a stage every new
path is added before any old one is removed, so a stage is admitted only if the *sum* of its
additions fits on top of the current load; after the stage the old paths are removed. Hence no
link is ever over capacity at any step of the plan, whatever order the switches apply a stage
in. Moves that can never be staged are dropped and reported.

With a `target` utilisation the search stops as soon as the highest utilisation is at or below
it (fewer moves, less churn); `Plan.target_met` says whether it got there. The decider carries
the stages out one after the other (`tandem.rollout`): a stage's decisions are built by
`stage_decisions` on the state as it is when the previous stage is done, after `fresh` has
dropped the moves that no longer apply (the workload changed meanwhile, or the new path no
longer fits) — the one place where a move becomes a decision.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .decide import DEFAULT, Config, Solver
from .decision import Action, ChangeStep, Decision, Explanation, Kind, Reservation
from .network import Path
from .routing import EPS, Fail, admissible
from .state import State


@dataclass(frozen=True, slots=True)
class Move:
    workload_id: str
    old: Reservation
    new: Reservation


@dataclass(frozen=True, slots=True)
class Plan:
    stages: tuple[tuple[Move, ...], ...]
    change_set: tuple[ChangeStep, ...]
    decisions: tuple[Decision, ...]
    state: State
    max_util_before: float
    max_util_after: float
    dropped: tuple[Move, ...] = ()
    # The ten highest utilisations before and after, worst first (the headroom gained).
    top_before: tuple[float, ...] = ()
    top_after: tuple[float, ...] = ()
    target: float = 0.0
    target_met: bool = False


def _util(state: State, used: list[float]) -> list[float]:
    return [u / c if c > EPS else (0.0 if u <= EPS else float("inf"))
            for u, c in zip(used, state.net.cap)]


def reoptimise(state: State, max_moves: int = 50, hot_links: int = 10,
               config: Config = DEFAULT, target: float = 0.0) -> Plan:
    """Plan moves off the `hot_links` most utilised directions until the highest utilisation
    is at or below `target` (0: while a move helps); see the module docstring."""
    net = state.net
    used = list(state.used)
    before = max(_util(state, used), default=0.0)
    moves: list[Move] = []
    moved: dict[str, tuple[int, ...]] = {}  # reservation id -> its planned new directions
    solvers: dict[str, Solver] = {}
    while len(moves) < max_moves:
        util = _util(state, used)
        if target > 0 and max(util, default=0.0) <= target + EPS:
            break
        hot_dirs = sorted((e for e in range(len(util)) if EPS < util[e] < float("inf")),
                          key=lambda e: (-util[e], e))[:hot_links]
        best: tuple[float, str, Reservation, Path] | None = None
        for hot in hot_dirs:  # the hottest link that can be relieved at all
            for wid, dec in state.workloads.items():
                for r in dec.paths:
                    if r.reservation_id in moved or hot not in state._dirs(r):
                        continue
                    alt = _alternative(state, solvers, dec, r, used, util[hot], config, moved)
                    if alt is not None and (best is None or (alt[0], r.reservation_id)
                                            < (best[0], best[2].reservation_id)):
                        best = (alt[0], wid, r, alt[1])
            if best is not None:
                break
        if best is None:
            break
        _, wid, r, p = best
        dec = state.workloads[wid]
        rev = dec.revision + 1
        new = Reservation(f"{re.sub(r'[.]r[0-9]+$', '', r.reservation_id)}.r{rev}", wid, r.demand_id,
                          tuple(net.site_ids[n] for n in p.nodes),
                          tuple(net.link_ids[e >> 1] for e in p.dirs), p.dirs, r.bandwidth_mbps,
                          p.latency_ms)
        for e in state._dirs(r):
            used[e] -= r.bandwidth_mbps
        for e in p.dirs:
            used[e] += r.bandwidth_mbps
        moves.append(Move(wid, r, new))
        moved[r.reservation_id] = p.dirs
    return _stage(state, moves, before, target)


def _alternative(state: State, solvers: dict[str, Solver], dec: Decision, r: Reservation,
                 used: list[float], hot_util: float, cfg: Config,
                 moved: dict[str, tuple[int, ...]]) -> tuple[float, Path] | None:
    """The candidate path for `r` whose worst utilisation after the move is lowest (< hot)."""
    req = dec.request
    if req is None:
        return None
    sv = solvers.get(dec.workload_id)
    if sv is None:
        sv = solvers[dec.workload_id] = Solver(state, req, cfg)
    di = next(i for i, d in enumerate(req.demands) if d.demand_id == r.demand_id)
    d, t = req.demands[di], sv.targets[di]
    if t.error:
        return None
    net = state.net
    src, dst = net.index[r.sites[0]], net.index[r.sites[-1]]
    budget = d.max_latency_ms - t.access_ms if d.max_latency_ms > 0 else 0.0
    if d.max_latency_ms > 0 and budget <= 0:
        return None
    cands = admissible(net, src, dst, budget, sv.transit)
    if isinstance(cands, Fail):
        return None
    siblings = [{e >> 1 for e in moved.get(o.reservation_id, state._dirs(o))} for o in dec.paths
                if o.demand_id == r.demand_id and o.reservation_id != r.reservation_id]
    own = set(state._dirs(r))
    best: tuple[float, Path] | None = None
    for p in cands:
        if p.dirs == r.dirs or (d.diverse and any(not s.isdisjoint(p.links) for s in siblings)):
            continue
        worst = 0.0
        for e in p.dirs:
            c = net.cap[e]
            if c <= EPS:
                worst = float("inf")
                break
            worst = max(worst, (used[e] + (0.0 if e in own else r.bandwidth_mbps)) / c)
        if worst < hot_util - 1e-3 and (best is None or (worst, p.dirs) < (best[0], best[1].dirs)):
            best = (worst, p)
    return best


def _stage(state: State, moves: list[Move], before: float, target: float) -> Plan:
    cur = list(state.used)
    cap = state.net.cap
    pending = list(moves)
    stages: list[tuple[Move, ...]] = []
    steps: list[ChangeStep] = []
    while pending:
        add = [0.0] * len(cur)
        stage: list[Move] = []
        rest: list[Move] = []
        for m in pending:
            own = set(state._dirs(m.old))
            fits = all(cur[e] + add[e] + m.new.bandwidth_mbps <= cap[e] + EPS
                       for e in m.new.dirs if e not in own)
            if fits:
                stage.append(m)
                for e in m.new.dirs:
                    if e not in own:
                        add[e] += m.new.bandwidth_mbps
            else:
                rest.append(m)
        if not stage:
            break
        for m in stage:
            own = set(state._dirs(m.old))
            for e in m.new.dirs:
                if e not in own:
                    cur[e] += m.new.bandwidth_mbps
            for e in own:
                if e not in m.new.dirs:
                    cur[e] -= m.old.bandwidth_mbps
        stages.append(tuple(stage))
        steps += [ChangeStep(Action.ADD_PATH, m.workload_id, m.new.reservation_id) for m in stage]
        steps += [ChangeStep(Action.REMOVE_PATH, m.workload_id, m.old.reservation_id)
                  for m in stage]
        pending = rest
    decisions, st = stage_decisions(state, [m for s in stages for m in s],
                                    "re-optimised: moved {n} path(s) off the most loaded links")
    ub, ua = _util(state, list(state.used)), _util(st, list(st.used))
    after = max(ua, default=0.0)
    return Plan(tuple(stages), tuple(steps), tuple(decisions), st, before, after,
                tuple(pending), _top(ub), _top(ua), target, target > 0 and after <= target + EPS)


def stage_decisions(state: State, moves: list[Move] | tuple[Move, ...],
                    summary: str) -> tuple[list[Decision], State]:
    """One REROUTED decision per workload for `moves` (its other paths unchanged), and the state
    with them applied. `summary` is the explanation; "{n}" becomes the workload's move count."""
    by_wl: dict[str, list[Move]] = {}
    for m in moves:
        by_wl.setdefault(m.workload_id, []).append(m)
    decisions: list[Decision] = []
    st = state
    for wid in sorted(by_wl):
        dec = st.workloads[wid]
        swap = {m.old.reservation_id: m.new for m in by_wl[wid]}
        paths = tuple(swap.get(r.reservation_id, r) for r in dec.paths)
        nd = replace(dec, kind=Kind.REROUTED, paths=paths, revision=dec.revision + 1,
                     max_latency_ms=max([dec.max_latency_ms] + [r.latency_ms for r in paths]),
                     explanation=Explanation(summary.replace("{n}", str(len(swap)))))
        decisions.append(nd)
        st = st.apply(nd)
    return decisions, st


def fresh(state: State, moves: tuple[Move, ...]) -> tuple[list[Move], list[tuple[Move, str]]]:
    """The moves of a stage that still apply to `state`, and the others with the reason: the
    workload's reservation changed since the plan (released, rerouted), a link of the new path
    is gone or down, or the new path no longer fits (what was planned to be freed was not, or
    others took it). The moves kept fit together, on top of the current load."""
    cap = state.net.cap
    add = [0.0] * len(cap)
    keep: list[Move] = []
    dropped: list[tuple[Move, str]] = []
    for m in moves:
        dec = state.workloads.get(m.workload_id)
        if dec is None or m.old not in dec.paths:
            dropped.append((m, f"{m.old.reservation_id} is no longer the workload's"))
            continue
        dirs = state._dirs(m.new)  # remapped if the topology changed since the plan
        if len(dirs) != len(m.new.links):
            dropped.append((m, "a link of the new path is gone"))
            continue
        own = set(state._dirs(m.old))
        new_dirs = [e for e in dirs if e not in own]
        if any(cap[e] <= EPS for e in new_dirs):
            dropped.append((m, "a link of the new path is down"))
            continue
        if any(state.used[e] + add[e] + m.new.bandwidth_mbps > cap[e] + EPS for e in new_dirs):
            dropped.append((m, "the new path no longer fits"))
            continue
        for e in new_dirs:
            add[e] += m.new.bandwidth_mbps
        keep.append(m)
    return keep, dropped


def _top(util: list[float]) -> tuple[float, ...]:
    return tuple(sorted((u for u in util if u < float("inf")), reverse=True)[:10])
