"""Decoupled baselines: what an operator has without a joint engine, on the same input.

1. `decide_nova_sp`: place by compute alone with Nova-style filter and weigh (active site,
   hypervisor, VM jurisdiction as a host aggregate, free compute, anti-affinity as a server
   group; weigh by free RAM, i.e. spread), then route every demand on its latency-shortest path
   as a routing protocol would, reserving it only if the path happens to have the bandwidth
   and to meet the latency and transit rules.
2. `decide_nova_cspf`: the same placement, routed by constrained shortest path (as
   intent-based SDN controllers do): the latency-shortest path over the links that have the
   bandwidth and cross only allowed countries, then checked against the latency bound.
3. `decide_nova_pack_cspf`: Nova configured to pack instead of spread, then CSPF (stacks a
   workload's groups on one site).
4. `decide_pla_cspf`: OSM's Placement module (PLA): the exact assignment of groups to sites of
   least compute price plus inter-site (PoP interconnection) link price under the latency
   bounds, blind to residual bandwidth; then CSPF.
5. `decide_nova_latency_cspf`: Nova with a latency filter and a latency weigher (low latency to
   the workload's users and to the groups already scheduled) beside the RAM and CPU weighers;
   then CSPF.

All answer with the same `Decision` type as the engine, so the benchmark folds them into the
same `State` and compares admitted bandwidth on identical request streams. Neither splits a
demand; a diverse demand gets the shortest path plus the shortest link-disjoint one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import numpy.typing as npt

from .decide import DEFAULT, Config, Solver
from .decision import Decision, Explanation, Kind, rejected
from .network import Network, Path
from .routing import EPS, Route
from .state import State
from .workload import WorkloadRequest, validate

FloatArray = npt.NDArray[np.float64]
# A rejection after the placement succeeded, by the reservation, starts with this (the
# benchmark tells placement-first losses from placement failures by it).
ROUTING_FAILED = "CSPF after placing"


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
    anti = solver.anti
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
            pack: bool = False, placer: str = "nova",
            weights: NovaWeights | None = None) -> Decision:
    err = validate(req, state.topology)
    if err is not None:
        return rejected(req, "invalid_request", err)
    if req.workload_id in state.workloads:
        state = state.release(req.workload_id)
    solver = Solver(state, req, config)
    bad = solver.target_error()
    if bad is not None:
        return rejected(req, bad[0], bad[1])
    if placer == "pla":
        asg = pla_place(solver)
        what = "OSM PLA placement (compute + link price under latency bounds)"
    elif placer == "nova-latency":
        asg = nova_latency_place(solver, weights or NovaWeights())
        what = "Nova filter&weigh placement with latency filter and weigher"
    else:
        asg = nova_place(solver, pack)
        what = "Nova filter&weigh placement"
    if isinstance(asg[0], str):
        return rejected(req, str(asg[0]), str(asg[1]))
    placed = tuple(int(s) for s in asg)
    routes = _route(solver, placed, constrained)
    if isinstance(routes, str):
        where = ", ".join(f"{g.group_id}@{solver.net.site_ids[s]}"
                          for g, s in zip(req.groups, placed))
        return rejected(req, routes.split(":", 1)[0], f"{ROUTING_FAILED} {where}: {routes}")
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
        cost, None, Explanation(f"baseline: {what}, {how} routing"),
        request=req)


def decide_nova_sp(state: State, req: WorkloadRequest, config: Config = DEFAULT) -> Decision:
    return _decide(state, req, False, config)


def decide_nova_cspf(state: State, req: WorkloadRequest, config: Config = DEFAULT) -> Decision:
    return _decide(state, req, True, config)


def decide_nova_pack_cspf(state: State, req: WorkloadRequest, config: Config = DEFAULT) -> Decision:
    """Nova with a packing RAM weigher, then constrained shortest path (extra baseline)."""
    return _decide(state, req, True, config, pack=True)


# ----------------------------------------------------------------------------- OSM PLA
# OSM's Placement module (PLA, osm_pla) places each VNF of a network service on a VIM by
# solving a MiniZinc model generated per request: one variable per VNF (its VIM; a pinned VNF
# is fixed), a constraint `trp_link_latency[a, b] <= bound` (and jitter) for every virtual link
# between two VNFs that carries one, and `solve minimize` of the VIMs' prices for the VNFs plus
# the price of the PoP interconnection link (PIL) every virtual link uses. The PIL table (per
# VIM pair: latency, jitter, price) is static operator data; PLA sees neither the residual
# bandwidth nor the load of the WAN, and it reserves nothing: the network is provisioned
# afterwards, here by CSPF.
#
# On our model: a VIM is a site, a VNF a VM group, a virtual link a demand; a demand to a
# user site is a virtual link to a VNF pinned there (price 0). The PIL between two sites is
# the latency-shortest WAN path between them: its latency, and its price per Mbps times the
# demand's Mbps (the engine's cost model). There is no jitter in the model.


def _pil_price(net: Network, a: int, b: int) -> float:
    """Cost per Mbps of the latency-shortest path a→b (the PIL's price), cached."""
    key = (net.site_ids, net.link_ids, net.link_lat, net.link_cost, net.dir_from)
    tab = _PIL.get(key)
    if tab is None:
        if len(_PIL) >= 8:
            _PIL.pop(next(iter(_PIL)))
        tab = _PIL[key] = {}
    got = tab.get((a, b))
    if got is None:
        p = net.shortest(a, b)
        got = tab[(a, b)] = math.inf if p is None else p.cost_per_mbps
    return got


_PIL: dict[tuple[object, ...], dict[tuple[int, int], float]] = {}


def _pil(net: Network, src: npt.NDArray[np.int64], dst: npt.NDArray[np.int64],
         priced: bool) -> tuple[FloatArray, FloatArray]:
    """PIL (latency, price per Mbps) from every site of `src` (rows) to every one of `dst`."""
    lat = np.stack([net.latency_to(int(t))[src] for t in dst], axis=1)
    if not priced:
        return lat, np.zeros_like(lat)
    price = np.array([[0.0 if s == t else _pil_price(net, int(s), int(t)) for t in dst]
                      for s in src]).reshape(len(src), len(dst))
    return lat, price


@dataclass(frozen=True, slots=True)
class PlaConfig:
    """PLA's exact solve covers every candidate assignment up to `max_assignments`; above it
    (many groups on a large WAN) each group keeps only its best sites by its own terms."""

    max_assignments: int = 2_000_000


def pla_place(solver: Solver, cfg: PlaConfig = PlaConfig()) -> tuple[int, ...] | tuple[str, str]:
    """OSM PLA's placement: the assignment of groups to sites of least compute price plus PIL
    price, under every latency bound (the PIL latency plus the access latency), exactly.

    Ties (all links unpriced and all sites at one price, as in the bundled topologies) are
    broken by the least Σ Mbps × PIL latency, then by the lowest site indices in group order.
    MiniZinc's default search would return the first optimum in input order (the lowest VIM
    index); the latency tie-break is the stronger choice and keeps PLA near its users.
    Beyond PLA, capacity (free compute, shared by groups on one site), the hypervisor, the VM
    jurisdiction and anti-affinity are constraints too: an operator offers PLA only VIMs that
    can host the VNFs. Transit rules and residual bandwidth are invisible to it.
    """
    cands = solver.candidates()
    if isinstance(cands, tuple):
        return cands
    net, req, st = solver.net, solver.req, solver.state
    n = len(req.groups)
    cost = net.site_cost()
    cs = [np.asarray(c, dtype=np.int64) for c in cands]
    priced = any(c > 0 for c in net.link_cost)
    total = math.prod(len(c) for c in cs)
    if total > cfg.max_assignments:
        keep = max(1, int(cfg.max_assignments ** (1.0 / n)))
        cs = [_trim(solver, gi, c, keep, priced) for gi, c in enumerate(cs)]

    def axis(gi: int, v: FloatArray | npt.NDArray[np.int64]) -> npt.NDArray[Any]:
        return np.asarray(v).reshape([-1 if j == gi else 1 for j in range(n)])

    shape = tuple(len(c) for c in cs)
    price = np.zeros(shape)
    lat = np.zeros(shape)
    ok = np.ones(shape, dtype=bool)
    for gi, g in enumerate(req.groups):
        price = price + axis(gi, g.count * g.vcpus * cost[cs[gi]])
    why: list[str] = []
    for di, d in enumerate(req.demands):
        t = solver.targets[di]
        a = solver.gidx[d.from_group]
        budget = d.max_latency_ms - t.access_ms if d.max_latency_ms > 0 else math.inf
        if t.group >= 0:
            b = t.group
            if a == b:
                continue
            pl, pp = _pil(net, cs[a], cs[b], priced)
            sel = [slice(None) if j in (a, b) else None for j in range(n)]
            if a > b:
                pl, pp = pl.T, pp.T
            pl, pp = pl[tuple(sel)], pp[tuple(sel)]
        else:
            pl, pp = _pil(net, cs[a], np.asarray([t.site], dtype=np.int64), priced)
            pl, pp = axis(a, pl[:, 0]), axis(a, pp[:, 0])
        good = np.isfinite(pl) & (pl <= budget + 1e-9)
        if not good.any():
            why.append(f"demand {d.demand_id!r}: no candidate site within "
                       f"{'its latency bound' if math.isfinite(budget) else 'reach'}")
        ok = ok & good
        price = price + d.bandwidth_mbps * np.where(np.isfinite(pp), pp, 0.0)
        lat = lat + d.bandwidth_mbps * np.where(np.isfinite(pl), pl + t.access_ms, 0.0)
    if why:
        return "latency", "PLA: " + "; ".join(why)
    if not ok.any():
        return "latency", "PLA: no site assignment meets every latency bound together"
    free = st.free_compute()
    site_of = [axis(gi, cs[gi]) for gi in range(n)]
    lat_ok = ok
    for pair in sorted(p for p in solver.anti if p[0] < p[1]):
        ok = ok & (site_of[pair[0]] != site_of[pair[1]])
    if lat_ok.any() and not ok.any():
        return "anti_affinity", "PLA: every assignment within the latency bounds puts an " \
            "anti-affine pair on one site"
    aa_ok = ok
    for size in range(2, n + 1):
        for sub in combinations(range(n), size):
            need = np.sum([req.groups[i].total for i in sub], axis=0)
            fits = (free >= need - EPS).all(axis=1)
            same = np.ones(shape, dtype=bool)
            for i in sub[1:]:
                same = same & (site_of[i] == site_of[sub[0]])
            ok = ok & (~same | fits[site_of[sub[0]]])
    if aa_ok.any() and not ok.any():
        return "compute", "PLA: no assignment within the latency bounds has the compute free"
    p = np.where(ok, price, math.inf)
    best = float(p.min())
    tie = ok & (price <= best + 1e-9 * max(1.0, abs(best)))
    flat = int(np.argmin(np.where(tie, lat, math.inf)))
    idx = np.unravel_index(flat, shape)
    return tuple(int(cs[gi][int(i)]) for gi, i in enumerate(idx))


def _trim(solver: Solver, gi: int, cands: npt.NDArray[np.int64], keep: int,
          priced: bool) -> npt.NDArray[np.int64]:
    """The `keep` sites of a group best by its own terms (compute price, then PIL price and
    latency to its fixed endpoints), in site order."""
    net, req = solver.net, solver.req
    g = req.groups[gi]
    price = g.count * g.vcpus * net.site_cost()[cands]
    lat = np.zeros(len(cands))
    for di, d in enumerate(req.demands):
        t = solver.targets[di]
        if solver.gidx[d.from_group] != gi or t.group >= 0:
            continue
        pl, pp = _pil(net, cands, np.asarray([t.site], dtype=np.int64), priced)
        price = price + d.bandwidth_mbps * pp[:, 0]
        lat = lat + d.bandwidth_mbps * pl[:, 0]
    order = np.lexsort((cands, lat, price))[:keep]
    return np.sort(cands[order])


def decide_pla_cspf(state: State, req: WorkloadRequest, config: Config = DEFAULT) -> Decision:
    """OSM PLA placement (compute + PIL price under latency bounds), then CSPF reservation."""
    return _decide(state, req, True, config, placer="pla")


# ------------------------------------------------------------- Nova latency-aware weigher
@dataclass(frozen=True, slots=True)
class NovaWeights:
    """Weigher multipliers (Nova: `ram_weight_multiplier`, `cpu_weight_multiplier`; the
    latency weigher's own). Nova normalises each weigher's raw values to [0, 1] over the
    hosts that passed the filters and adds them, times their multipliers."""

    ram: float = 1.0
    cpu: float = 1.0
    latency: float = 10.0


def _normalise(v: FloatArray) -> FloatArray:
    lo, hi = float(v.min()), float(v.max())
    if hi - lo <= 1e-12:
        return np.zeros_like(v)
    out: FloatArray = (v - lo) / (hi - lo)
    return out


def nova_latency_place(solver: Solver, weights: NovaWeights = NovaWeights()
                       ) -> tuple[int, ...] | tuple[str, str]:
    """Nova filter & weigh with a latency filter and weigher, group by group in request order.

    Filters: the usual (active, hypervisor, VM jurisdiction as a host aggregate, free compute,
    anti-affinity as a server group) plus a latency filter: a site is dropped when a demand of
    the group to a user site, or to a group already scheduled, cannot meet its latency bound
    from it (shortest-path latency plus access latency). Weighers: RAM and CPU (free memory and
    vCPUs, spread) and latency: minus the Mbps-weighted shortest-path latency from the site to
    the group's known traffic endpoints — its user sites and the groups already scheduled that
    it talks to (Nova's soft-affinity weigher, by distance) — or, for a group with none, to
    all the workload's user sites. The best weight wins; ties go to the lowest site id.
    """
    cands = solver.candidates()
    if isinstance(cands, tuple):
        return cands
    req, net, st = solver.req, solver.net, solver.state
    anti = solver.anti
    free_all = st.free_compute().copy()
    asg: dict[int, int] = {}
    users: list[tuple[int, float, float]] = []  # (site, Mbps, access) of every user demand
    for di, d in enumerate(req.demands):
        t = solver.targets[di]
        if t.group < 0:
            users.append((t.site, d.bandwidth_mbps, t.access_ms))
    out: list[int] = []
    for gi, g in enumerate(req.groups):
        hosts = np.asarray(cands[gi], dtype=np.int64)
        need = np.asarray(g.total)
        keep = (free_all[hosts] >= need - EPS).all(axis=1)
        keep &= np.array([not any(asg.get(gj) == s for gj in range(len(req.groups))
                                  if (gi, gj) in anti) for s in hosts.tolist()], dtype=bool)
        if not keep.any():
            return ("anti_affinity" if req.rules.anti_affinity else "compute",
                    f"no host passes the filters for group {g.group_id!r}")
        hosts = hosts[keep]
        ends: list[tuple[int, float, float, float]] = []  # (site, Mbps, access, bound)
        for di, d in enumerate(req.demands):
            t = solver.targets[di]
            a = solver.gidx[d.from_group]
            if a == gi and t.group < 0:
                ends.append((t.site, d.bandwidth_mbps, t.access_ms, d.max_latency_ms))
            elif a == gi and t.group in asg:
                ends.append((asg[t.group], d.bandwidth_mbps, 0.0, d.max_latency_ms))
            elif t.group == gi and a in asg:  # traffic into this group: latency from there
                ends.append((-1 - asg[a], d.bandwidth_mbps, 0.0, d.max_latency_ms))
        keep = np.ones(len(hosts), dtype=bool)
        score = np.zeros(len(hosts))
        for site, mbps, acc, bound in ends:
            lat = (net.latency_to(site)[hosts] if site >= 0
                   else np.array([net.latency_to(int(h))[-1 - site] for h in hosts]))
            lat = lat + acc
            keep &= np.isfinite(lat)
            if bound > 0:
                keep &= lat <= bound + 1e-9
            score = score + mbps * np.where(np.isfinite(lat), lat, 0.0)
        if not keep.any():
            return "latency", (f"no host passes the latency filter for group {g.group_id!r} "
                               f"({len(hosts)} passed the others)")
        hosts, score = hosts[keep], score[keep]
        if not ends and users:
            for site, mbps, acc in users:  # unreachable counts as far (1e6 ms)
                lat = net.latency_to(site)[hosts] + acc
                score = score + mbps * np.where(np.isfinite(lat), lat, 1e6)
        free = free_all[hosts]
        w = (weights.ram * _normalise(free[:, 1]) + weights.cpu * _normalise(free[:, 0])
             + weights.latency * _normalise(-score))
        top = float(w.max())
        s = int(min((int(h) for h, x in zip(hosts, w) if x >= top - 1e-12),
                    key=lambda i: net.site_ids[i]))
        free_all[s] -= need
        asg[gi] = s
        out.append(s)
    return tuple(out)


def decide_nova_latency_cspf(state: State, req: WorkloadRequest, config: Config = DEFAULT,
                             weights: NovaWeights = NovaWeights()) -> Decision:
    """Nova with a latency filter and weigher (plus RAM and CPU weighers), then CSPF."""
    return _decide(state, req, True, config, placer="nova-latency", weights=weights)
