"""Decoupled baselines: what an operator has without a joint engine, on the same input.

1. `decide_nova_sp`: place by compute alone with Nova-style filter and weigh (active site,
   hypervisor, VM jurisdiction as a host aggregate, free compute, anti-affinity as a server
   group; weigh by free RAM, i.e. spread), then route every demand on its latency-shortest path
   as a routing protocol would, reserving it only if the path happens to have the bandwidth
   and to meet the latency and transit rules.
2. `decide_nova_cspf`: the same placement, routed by constrained shortest path (as
   intent-based SDN controllers do): the latency-shortest path over the links that have the
   bandwidth and cross only allowed countries, then checked against the latency bound.
3. `decide_nova_pack_cspf`: Nova configured to pack instead of spread, then CSPF — the
   strongest decoupled variant we know for chatty groups (not asked for; reported as well).

Both answer with the same `Decision` type as the engine, so the benchmark folds them into the
same `State` and compares admitted bandwidth on identical request streams. Neither splits a
demand; a diverse demand gets the shortest path plus the shortest link-disjoint one.
"""

from __future__ import annotations

from .decide import DEFAULT, Config, Solver
from .decision import Decision, Explanation, Kind, rejected
from .network import Path
from .routing import EPS, Route
from .state import State
from .workload import WorkloadRequest, validate


def nova_place(solver: Solver, pack: bool = False) -> tuple[int, ...] | tuple[str, str]:
    """Filter and weigh each group in request order; (constraint, detail) when one fails.

    Nova's default RAM weigher spreads (most free memory first); with a negative multiplier
    it packs (least free memory that fits first), which tends to stack a workload's groups on
    one site — a stronger decoupled baseline for chatty groups, offered as `pack`.
    """
    cands = solver.candidates()
    if isinstance(cands, tuple):
        return cands
    req, net, st = solver.req, solver.net, solver.state
    anti: set[tuple[int, int]] = set()
    for aa in req.rules.anti_affinity:
        ids = [solver.gidx[x] for x in aa]
        anti |= {(a, b) for a in ids for b in ids if a != b}
    extra: dict[int, tuple[float, float, float]] = {}
    asg: list[int] = []
    for gi, g in enumerate(req.groups):
        best: tuple[float, str] | None = None
        for s in cands[gi]:
            if any(asg[gj] == s and (gi, gj) in anti for gj in range(len(asg))):
                continue
            sid = net.site_ids[s]
            free = st.site_free(sid)
            e = extra.get(s, (0.0, 0.0, 0.0))
            t = g.total
            left = tuple(f - x - n for f, x, n in zip(free, e, t))
            if min(left) < -EPS:
                continue
            key = (left[1] if pack else -left[1], sid)  # RAMWeigher: spread, or pack
            if best is None or key < best:
                best = key
        if best is None:
            return "anti_affinity" if req.rules.anti_affinity else "compute", (
                f"no host passes the filters for group {g.group_id!r}")
        s = net.index[best[1]]
        e = extra.get(s, (0.0, 0.0, 0.0))
        t = g.total
        extra[s] = (e[0] + t[0], e[1] + t[1], e[2] + t[2])
        asg.append(s)
    return tuple(asg)


def _check(p: Path, bw: float, res: list[float], max_lat: float, access: float,
           transit: frozenset[str]) -> str | None:
    if transit and not p.countries <= transit:
        return "transit_jurisdiction"
    if max_lat > 0 and p.latency_ms + access > max_lat + 1e-9:
        return "latency"
    if min(res[d] for d in p.dirs) < bw - EPS:
        return "bandwidth"
    return None


def _route(solver: Solver, asg: tuple[int, ...], constrained: bool) -> list[tuple[int, Route]] | str:
    net, req = solver.net, solver.req
    res = list(solver.res)
    out: list[tuple[int, Route]] = []
    transit = req.rules.transit_jurisdictions
    for di, d in enumerate(req.demands):
        t = solver.targets[di]
        src = asg[solver.gidx[d.from_group]]
        dst = asg[t.group] if t.group >= 0 else t.site
        if src == dst:
            if d.max_latency_ms > 0 and t.access_ms > d.max_latency_ms:
                return "latency"
            out.append((di, Route([], 0.0, 0.0, t.access_ms)))
            continue
        chosen: list[Path] = []
        banned: set[int] = set()
        for _ in range(2 if d.diverse else 1):
            if constrained:
                ok = [
                    res[e] >= d.bandwidth_mbps - EPS
                    and (not transit or net.link_countries[e >> 1] <= transit)
                    and (e >> 1) not in banned
                    for e in range(len(net.cap))
                ]
                p = net.shortest(src, dst, ok)
            else:
                p = next((q for q in net.paths(src, dst) if banned.isdisjoint(q.links)), None)
            if p is None and constrained and not chosen and transit and net.shortest(
                    src, dst, net.transit_mask(transit).tolist()) is None:
                return f"transit_jurisdiction: demand {d.demand_id!r}: no compliant path"
            if p is None:
                return "diversity" if chosen else ("bandwidth" if constrained else "latency")
            why = _check(p, d.bandwidth_mbps, res, d.max_latency_ms, t.access_ms, transit)
            if why is not None:
                return f"{why}: demand {d.demand_id!r}"
            chosen.append(p)
            banned |= set(p.links)
        r = Route([(p, d.bandwidth_mbps) for p in chosen], 0.0,
                  sum(d.bandwidth_mbps * p.cost_per_mbps for p in chosen),
                  max(p.latency_ms for p in chosen) + t.access_ms)
        for p in chosen:
            for e in p.dirs:
                res[e] -= d.bandwidth_mbps
        out.append((di, r))
    return out


def _decide(state: State, req: WorkloadRequest, constrained: bool, config: Config,
            pack: bool = False) -> Decision:
    err = validate(req, state.topology)
    if err is not None:
        return rejected(req, "invalid_request", err)
    if req.workload_id in state.workloads:
        state = state.release(req.workload_id)
    solver = Solver(state, req, config)
    bad = solver.target_error()
    if bad is not None:
        return rejected(req, bad[0], bad[1])
    asg = nova_place(solver, pack)
    if isinstance(asg[0], str):
        return rejected(req, str(asg[0]), str(asg[1]))
    placed = tuple(int(s) for s in asg)
    routes = _route(solver, placed, constrained)
    if isinstance(routes, str):
        return rejected(req, routes.split(":", 1)[0], routes)
    cost = sum(g.count * g.vcpus * state.topology.sites[solver.net.site_ids[s]].cost_per_vcpu_hour
               for g, s in zip(req.groups, placed)) + sum(r.cost for _, r in routes)
    if req.rules.cost_ceiling > 0 and cost > req.rules.cost_ceiling + EPS:
        return rejected(req, "cost_ceiling", f"cost {cost:.3f} > {req.rules.cost_ceiling:.3f}")
    placements = tuple((g.group_id, solver.net.site_ids[s], g.count)
                       for g, s in zip(req.groups, placed))
    how = "constrained shortest path" if constrained else "shortest path"
    how += ", packing weigher" if pack else ""
    return Decision(
        Kind.PLACED, req.workload_id, req.tenant, req.request_id, placements,
        solver.reservations(routes), cost, max((r.latency_ms for _, r in routes), default=0.0),
        cost, None, Explanation(f"baseline: Nova filter&weigh placement, {how} routing"),
        request=req)


def decide_nova_sp(state: State, req: WorkloadRequest, config: Config = DEFAULT) -> Decision:
    return _decide(state, req, False, config)


def decide_nova_cspf(state: State, req: WorkloadRequest, config: Config = DEFAULT) -> Decision:
    return _decide(state, req, True, config)


def decide_nova_pack_cspf(state: State, req: WorkloadRequest, config: Config = DEFAULT) -> Decision:
    """Nova with a packing RAM weigher, then constrained shortest path (extra baseline)."""
    return _decide(state, req, True, config, pack=True)
