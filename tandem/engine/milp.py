"""Exact joint decision as a MILP (scipy `milp`, HiGHS), for instances of up to ~22 sites.

Same question as `decide()`, answered exactly over the same candidate paths and with the same
objective (cost + network_weight x congestion-weighted Mbps), so the benchmark measures what
the heuristic search loses, nothing else:

    x[g,s] ∈ {0,1}       group g on site s (only sites passing hypervisor/jurisdiction/compute)
    y[d,s,t] ∈ [0,1]     group-to-group demand d runs s→t;  y ≥ x[g1,s] + x[g2,t] - 1
    f[d,.,p] ≥ 0         Mbps of d on candidate path p (a link-disjoint pair for diverse d)
    Σ_p f = bw·x (fixed target) or bw·y (group target), unless the endpoints coincide
    Σ f over paths using direction e ≤ residual(e);  Σ_g need_g·x[g,s] ≤ free(s)
    x[g1,s] + x[g2,s] ≤ 1 for anti-affine pairs;  Σ_s x[g,s] = 1;  cost ≤ ceiling

A diverse demand chooses among link-disjoint candidate pairs and may split across pairs (the
heuristic uses one pair), so the MILP is a relaxation there — never weaker than the heuristic.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp  # type: ignore[import-untyped]
from scipy.sparse import coo_matrix  # type: ignore[import-untyped]

from .decide import DEFAULT, Config, Solver
from .decision import Decision, Explanation, Kind, rejected
from .network import Path
from .routing import Fail, Route, admissible
from .state import State
from .workload import WorkloadRequest, validate


class _Model:
    def __init__(self) -> None:
        self.c: list[float] = []
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.integ: list[int] = []
        self.rows: list[tuple[dict[int, float], float, float]] = []

    def var(self, cost: float, ub: float = np.inf, integer: bool = False) -> int:
        self.c.append(cost)
        self.lb.append(0.0)
        self.ub.append(ub)
        self.integ.append(1 if integer else 0)
        return len(self.c) - 1

    def row(self, coef: dict[int, float], lo: float, hi: float) -> None:
        self.rows.append((coef, lo, hi))


def _options(solver: Solver, di: int, s: int, t: int) -> list[tuple[tuple[Path, ...], float]]:
    """Candidate path units (single paths, or disjoint pairs for diverse) with unit score."""
    d, tg = solver.req.demands[di], solver.targets[di]
    budget = d.max_latency_ms - tg.access_ms if d.max_latency_ms > 0 else 0.0
    if d.max_latency_ms > 0 and budget < 0:
        return []
    got = admissible(solver.net, s, t, budget if budget > 0 else (1e-12 if d.max_latency_ms else 0.0),
                     solver.transit)
    if isinstance(got, Fail):
        return []
    nw = solver.cfg.network_weight

    def unit(p: Path) -> float:
        return p.cost_per_mbps + nw * sum(solver.w[e] for e in p.dirs)

    ps = [p for p in got if all(solver.w[e] < float("inf") for e in p.dirs)]
    if not d.diverse:
        return [((p,), unit(p)) for p in ps]
    out: list[tuple[tuple[Path, ...], float]] = []
    for i in range(len(ps)):
        for j in range(i + 1, len(ps)):
            if set(ps[i].links).isdisjoint(ps[j].links):
                out.append(((ps[i], ps[j]), unit(ps[i]) + unit(ps[j])))
    return out


def decide_milp(state: State, req: WorkloadRequest, config: Config = DEFAULT,
                time_limit: float = 30.0) -> Decision:
    err = validate(req, state.topology)
    if err is not None:
        return rejected(req, "invalid_request", err)
    if req.workload_id in state.workloads:
        state = state.release(req.workload_id)
    sv = Solver(state, req, config)
    bad = sv.target_error()
    if bad is not None:
        return rejected(req, bad[0], bad[1])
    cands = sv.candidates()
    if isinstance(cands, tuple):
        return rejected(req, cands[0], cands[1])
    net, m = sv.net, _Model()
    sites = state.topology.sites
    x: dict[tuple[int, int], int] = {}
    for gi, g in enumerate(req.groups):
        for s in cands[gi]:
            cost = g.count * g.vcpus * sites[net.site_ids[s]].cost_per_vcpu_hour
            x[gi, s] = m.var(cost, 1.0, True)
        m.row({x[gi, s]: 1.0 for s in cands[gi]}, 1.0, 1.0)
    cap_rows: dict[int, dict[int, float]] = {}
    cost_row: dict[int, float] = {}
    flows: list[tuple[int, int, tuple[Path, ...]]] = []  # (var, demand, paths)
    for (gi, s), v in x.items():
        g = req.groups[gi]
        cost_row[v] = g.count * g.vcpus * sites[net.site_ids[s]].cost_per_vcpu_hour

    def add_flows(di: int, s: int, t: int, selector: int) -> None:
        bw = req.demands[di].bandwidth_mbps
        coef = {selector: -bw}
        for paths, unit in _options(sv, di, s, t):
            f = m.var(unit)
            coef[f] = 1.0
            flows.append((f, di, paths))
            for p in paths:
                cost_row[f] = cost_row.get(f, 0.0) + p.cost_per_mbps
                for e in p.dirs:
                    cap_rows.setdefault(e, {})[f] = cap_rows.get(e, {}).get(f, 0.0) + 1.0
        m.row(coef, 0.0, 0.0)

    for di, d in enumerate(req.demands):
        tg, g1 = sv.targets[di], sv.gidx[d.from_group]
        if tg.group < 0:
            for s in cands[g1]:
                if tg.site < 0:
                    m.row({x[g1, s]: 1.0}, 0.0, 0.0)
                elif s == tg.site:
                    if d.max_latency_ms > 0 and tg.access_ms > d.max_latency_ms:
                        m.row({x[g1, s]: 1.0}, 0.0, 0.0)
                else:
                    add_flows(di, s, tg.site, x[g1, s])
            continue
        for s in cands[g1]:
            for t in cands[tg.group]:
                y = m.var(0.0, 1.0)
                m.row({y: 1.0, x[g1, s]: -1.0, x[tg.group, t]: -1.0}, -1.0, np.inf)
                if s != t:
                    add_flows(di, s, t, y)
    for e, coef in cap_rows.items():
        m.row(coef, -np.inf, max(sv.res[e], 0.0))
    for s in {s for lst in cands for s in lst}:
        free = state.site_free(net.site_ids[s])
        for k in range(3):
            coef = {x[gi, s]: req.groups[gi].total[k] for gi in range(len(req.groups))
                    if (gi, s) in x and req.groups[gi].total[k] > 0}
            if coef:
                m.row(coef, -np.inf, free[k] + 1e-6)
    for aa in req.rules.anti_affinity:
        ids = [sv.gidx[a] for a in aa]
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                for s in cands[a]:
                    if (b, s) in x:
                        m.row({x[a, s]: 1.0, x[b, s]: 1.0}, -np.inf, 1.0)
    if req.rules.cost_ceiling > 0:
        m.row(cost_row, -np.inf, req.rules.cost_ceiling + 1e-6)
    ri: list[int] = []
    cidx: list[int] = []
    val: list[float] = []
    lo: list[float] = []
    hi: list[float] = []
    for i, (coef, low, high) in enumerate(m.rows):
        for j, cv in coef.items():
            ri.append(i)
            cidx.append(j)
            val.append(cv)
        lo.append(low)
        hi.append(high)
    a_mat = coo_matrix((val, (ri, cidx)), shape=(len(m.rows), len(m.c))).tocsr()
    sol = milp(np.array(m.c), constraints=LinearConstraint(a_mat, lo, hi),
               integrality=np.array(m.integ), bounds=Bounds(m.lb, m.ub),
               options={"time_limit": time_limit, "mip_rel_gap": 1e-6})
    if sol.x is None:
        return rejected(req, "bandwidth", f"MILP: {sol.message}")
    xs = sol.x
    asg = [-1] * len(req.groups)
    for (gi, s), v in x.items():
        if xs[v] > 0.5:
            asg[gi] = s
    routes: dict[int, Route] = {di: Route([], 0.0, 0.0, sv.targets[di].access_ms)
                                for di in range(len(req.demands))}
    for f, di, paths in flows:
        if xs[f] > 1e-6:
            rt = routes[di]
            for p in paths:
                rt.alloc.append((p, float(xs[f])))
                rt.cost += float(xs[f]) * p.cost_per_mbps
                rt.latency_ms = max(rt.latency_ms, p.latency_ms + sv.targets[di].access_ms)
    placements = tuple((g.group_id, net.site_ids[s], g.count) for g, s in zip(req.groups, asg))
    reservations = sv.reservations(sorted(routes.items()))
    cost = sum(c * float(xs[j]) for j, c in cost_row.items())
    lat = max((rt.latency_ms for rt in routes.values()), default=0.0)
    return Decision(Kind.PLACED, req.workload_id, req.tenant, req.request_id, placements,
                    reservations,
                    cost, lat, float(sol.fun), None,
                    Explanation(f"exact MILP optimum ({len(m.c)} variables, {len(m.rows)} rows)"),
                    request=req)
