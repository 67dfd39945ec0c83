"""The joint decision: choose sites for every VM group and paths for every demand together.

Why joint: placing by compute alone and routing afterwards (the Nova + shortest-path way) puts
chatty groups far apart and users far from their servers, and discovers only afterwards that
the WAN cannot carry the traffic. Here every site assignment is scored by actually routing its
demands on the residual network, so a site is chosen *because* its paths are short, compliant
and uncongested.

Search (deterministic, bounded so a decision takes a few milliseconds on a 40-site WAN):
1. Candidate sites per group: active, hypervisor offered, VM jurisdiction allowed, compute free.
2. Unary score per (group, site): compute cost plus the routed cost of the group's demands to
   fixed sites and user locations. Infeasible pairs are dropped, remembering why.
3. Beam search over groups (anchored groups first, then the groups they talk to): a partial
   assignment is extended with the best few unary candidates *and* the sites nearest to the
   groups it talks to (co-location included), scored by unary + routed group-to-group demands.
4. The best complete assignments are routed exactly (demands share the residual network) and
   checked against the cost ceiling; the best score wins, the others are the explanation.

Score = cost per hour + `network_weight` x sum(Mbps x congestion weight of every hop), so among
equally priced options the engine uses the fewest, least loaded links.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, replace

from .decision import Alternative, Decision, Explanation, Kind, Reservation, rejected
from .jurisdiction import normalise
from .network import Network, access_latency_ms, great_circle_km
from .routing import Route, commit, direction_weights, route_demand
from .state import State
from .topology import SiteState
from .workload import Demand, WorkloadRequest, validate

EPS = 1e-6
# An exactly routed assignment: (routes per demand index, cost, score, worst latency).
_Exact = tuple[list[tuple[int, Route]], float, float, float]


@dataclass(frozen=True, slots=True)
class Config:
    beam_width: int = 4
    candidates_per_group: int = 6
    near_partner: int = 3
    # Once `candidates_per_group` feasible sites are known, stop scoring more than this many
    # sites per group in lower-bound order (speed; an infeasible group is always fully tried).
    max_unary_evals: int = 16
    # On federations of at most this many sites the search is widened (beam 8, 10 candidates
    # per group, 5 near sites, 40 scored sites): it is cheap there, and it is where the exact
    # MILP can check it. 0 disables.
    small_sites: int = 24
    alternatives: int = 4
    network_weight: float = 0.01
    # Score added per vCPU of a group that leaves its current site (reaction: migrate).
    migration_cost_per_vcpu: float = 5.0

    def for_sites(self, n: int) -> Config:
        if n > self.small_sites:
            return self
        return replace(self, beam_width=max(self.beam_width, 8),
                       candidates_per_group=max(self.candidates_per_group, 10),
                       near_partner=max(self.near_partner, 5),
                       max_unary_evals=max(self.max_unary_evals, 40))


DEFAULT = Config()


def decide(state: State, req: WorkloadRequest, config: Config = DEFAULT) -> Decision:
    """Place `req` jointly on `state`, or reject it naming the constraint that failed.

    A request for a workload id already admitted is a change: it is decided as if the old
    placement were released (what-if), and `State.apply` replaces the old one.
    """
    err = validate(req, state.topology)
    if err is not None:
        return rejected(req, "invalid_request", err)
    if req.workload_id in state.workloads:
        state = state.release(req.workload_id)
    return Solver(state, req, config).solve()


@dataclass(slots=True)
class _Target:
    group: int  # index of the target group, or -1
    site: int  # fixed site index, or -1
    access_ms: float


class Solver:
    """One decision's search context (residual network, weights, caches)."""

    def __init__(
        self, state: State, req: WorkloadRequest, config: Config,
        current: dict[str, str] | None = None,
    ) -> None:
        self.net: Network = state.net
        self.state, self.req = state, req
        self.cfg = config.for_sites(len(self.net.site_ids))
        self.res = state.residual()
        self.w = direction_weights(self.net, state.used)
        self.gidx = {g.group_id: i for i, g in enumerate(req.groups)}
        self.current = current or {}
        self.targets = [self._target(d) for d in req.demands]
        self.transit = req.rules.transit_jurisdictions
        self._est: dict[tuple[int, int, int], Route | str] = {}
        self._free: dict[str, tuple[float, float, float]] = {}
        self.pwc: dict[int, float] = {}  # path weight by id(path), for this decision
        self._un: list[dict[int, float | str]] = [{} for _ in req.groups]
        self._cands: list[set[int]] = [set() for _ in req.groups]
        self.why: list[Counter[str]] = [Counter() for _ in req.groups]
        self.reasons: Counter[str] = Counter()

    def _target(self, d: Demand) -> _Target:
        if d.to_group:
            return _Target(self.gidx[d.to_group], -1, 0.0)
        if d.to_site:
            return _Target(-1, self.net.index[d.to_site], 0.0)
        loc = d.to_location
        assert loc is not None
        best: tuple[float, str] | None = None
        for sid, s in self.state.topology.sites.items():
            if s.state is SiteState.DOWN:
                continue
            km = great_circle_km(loc.latitude, loc.longitude, s.latitude, s.longitude)
            if best is None or (km, sid) < best:
                best = (km, sid)
        if best is None:
            return _Target(-1, -1, 0.0)
        return _Target(-1, self.net.index[best[1]], access_latency_ms(best[0]))

    def free(self, site_id: str) -> tuple[float, float, float]:
        got = self._free.get(site_id)
        if got is None:
            got = self._free[site_id] = self.state.site_free(site_id)
        return got

    # --------------------------------------------------------------------- candidates
    def candidates(self) -> list[list[int]] | tuple[str, str]:
        """Feasible site indices per group, or (constraint, detail) when a group has none."""
        sites = self.state.topology.sites
        rules = self.req.rules
        out: list[list[int]] = []
        for g in self.req.groups:
            stages: list[tuple[str, list[str]]] = []
            cur = [sid for sid, s in sites.items() if s.state is SiteState.ACTIVE]
            stages.append(("compute", cur))
            if g.hypervisor:
                cur = [s for s in cur if g.hypervisor in sites[s].hypervisors]
                stages.append(("hypervisor", cur))
            if rules.vm_jurisdictions:
                cur = [s for s in cur if normalise(sites[s].jurisdiction) in rules.vm_jurisdictions]
                stages.append(("vm_jurisdiction", cur))
            need = g.total
            stay = self.current.get(g.group_id)
            cur = [s for s in cur if s == stay or _fits(self.free(s), need)]
            stages.append(("compute", cur))
            if not cur:
                name = next(n for n, lst in stages if not lst)
                return name, f"no site for group {g.group_id!r} passes the {name} rule"
            out.append([self.net.index[s] for s in cur])
        return out

    # ------------------------------------------------------------------------ scoring
    def est(self, di: int, src: int, dst: int) -> Route | str:
        """Route demand `di` alone on the residual network (cached per decision)."""
        key = (di, src, dst)
        got = self._est.get(key)
        if got is None:
            d, t = self.req.demands[di], self.targets[di]
            got = route_demand(self.net, self.res, self.w, src, dst, d.bandwidth_mbps,
                               d.max_latency_ms, self.transit, d.diverse, t.access_ms,
                               self.cfg.network_weight, self.pwc)
            self._est[key] = got
        return got

    def unary(self, gi: int, s: int) -> float | str:
        g = self.req.groups[gi]
        site = self.state.topology.sites[self.net.site_ids[s]]
        score = g.count * g.vcpus * site.cost_per_vcpu_hour
        cur = self.current.get(g.group_id)
        if cur is not None and cur != site.site_id:
            score += self.cfg.migration_cost_per_vcpu * g.count * g.vcpus
        for di, d in enumerate(self.req.demands):
            t = self.targets[di]
            if self.gidx[d.from_group] != gi or t.group >= 0:
                continue
            if t.site < 0:
                return "latency"
            r = self.est(di, s, t.site)
            if isinstance(r, str):
                return r
            score += r.cost + self.cfg.network_weight * r.weight
        return score

    def unary_of(self, gi: int, s: int) -> float | None:
        """Memoised unary score of a candidate site, None when infeasible or not a candidate."""
        if s not in self._cands[gi]:
            return None
        memo = self._un[gi]
        v = memo.get(s)
        if v is None:
            v = memo[s] = self.unary(gi, s)
            if isinstance(v, str):
                self.why[gi][v] += 1
        return None if isinstance(v, str) else v

    def lower_bound(self, gi: int, s: int) -> float:
        """A cheap bound below `unary`: every hop weighs at least 1, nothing is congested."""
        g = self.req.groups[gi]
        site = self.state.topology.sites[self.net.site_ids[s]]
        lb = g.count * g.vcpus * site.cost_per_vcpu_hour
        cur = self.current.get(g.group_id)
        if cur is not None and cur != site.site_id:
            lb += self.cfg.migration_cost_per_vcpu * g.count * g.vcpus
        for di, d in enumerate(self.req.demands):
            t = self.targets[di]
            if self.gidx[d.from_group] == gi and t.group < 0 and t.site >= 0 and t.site != s:
                lb += d.bandwidth_mbps * self.net.unit_bound(s, t.site, self.cfg.network_weight)
        return lb

    def top(self, gi: int, m: int) -> list[int]:
        """The m candidate sites of lowest unary score, evaluating as few as the bounds allow.

        Sites are scored in order of a lower bound; the search stops when the bound exceeds
        the m-th best score (exact), or after `max_unary_evals` scored sites (approximate).
        """
        heap = [(self.lower_bound(gi, s), s) for s in self._cands[gi]]
        heapq.heapify(heap)
        best: list[tuple[float, int]] = []
        evaluated = 0
        while heap:
            lb, s = heapq.heappop(heap)
            if len(best) >= m and (lb > best[m - 1][0] or evaluated >= self.cfg.max_unary_evals):
                break
            evaluated += 1
            v = self.unary_of(gi, s)
            if v is not None:
                best.append((v, s))
                best.sort()
        return [s for _, s in best[:m]]

    def pair_score(self, di: int, src: int, dst: int) -> float | str:
        r = self.est(di, src, dst)
        if isinstance(r, str):
            return r
        return r.cost + self.cfg.network_weight * r.weight

    # ------------------------------------------------------------------------- search
    def order(self) -> list[int]:
        """Anchored groups (demands to fixed endpoints) first, then their chattiest partners."""
        n = len(self.req.groups)
        fixed = [0.0] * n
        link = [[0.0] * n for _ in range(n)]
        for di, d in enumerate(self.req.demands):
            a, t = self.gidx[d.from_group], self.targets[di]
            if t.group >= 0:
                link[a][t.group] += d.bandwidth_mbps
                link[t.group][a] += d.bandwidth_mbps
            else:
                fixed[a] += d.bandwidth_mbps
        order: list[int] = []
        left = set(range(n))
        while left:
            gi = min(left, key=lambda i: (-sum(link[i][j] for j in order), -fixed[i],
                                          -sum(link[i]), self.req.groups[i].group_id))
            order.append(gi)
            left.remove(gi)
        return order

    def beam(self, tops: list[list[int]]) -> list[tuple[float, tuple[int, ...]]]:
        groups = self.req.groups
        order = self.order()
        anti: set[tuple[int, int]] = set()
        for aa in self.req.rules.anti_affinity:
            ids = [self.gidx[x] for x in aa]
            anti |= {(a, b) for a in ids for b in ids if a != b}
        # partial: (score, assignment per group index, -1 = unassigned)
        beam: list[tuple[float, tuple[int, ...]]] = [(0.0, (-1,) * len(groups))]
        for gi in order:
            ext: dict[tuple[int, ...], float] = {}
            for score, asg in beam:
                opts = list(tops[gi])
                for di, d in enumerate(self.req.demands):
                    a, t = self.gidx[d.from_group], self.targets[di]
                    other = t.group if a == gi else (a if t.group == gi else -1)
                    if other >= 0 and asg[other] >= 0:
                        opts += self._near(asg[other], gi)
                for s in dict.fromkeys(opts):
                    un = self.unary_of(gi, s)
                    assert un is not None
                    sc = self._extend(gi, s, asg, anti, un, score)
                    if sc is None:
                        continue
                    new = asg[:gi] + (s,) + asg[gi + 1:]
                    if new not in ext or sc < ext[new]:
                        ext[new] = sc
            beam = heapq.nsmallest(self.cfg.beam_width, ((v, k) for k, v in ext.items()))
            if not beam:
                return []
        return beam

    def _near(self, site: int, gi: int) -> list[int]:
        """The partner's own site (co-location) and the nearest feasible sites to it."""
        out = [site] if self.unary_of(gi, site) is not None else []
        for s in self.net.near(site):
            if len(out) > self.cfg.near_partner:
                break
            if self.unary_of(gi, s) is not None:
                out.append(s)
        return out

    def _extend(self, gi: int, s: int, asg: tuple[int, ...], anti: set[tuple[int, int]],
                un: float, score: float) -> float | None:
        sid = self.net.site_ids[s]
        need = (0.0, 0.0, 0.0)
        for gj in range(len(asg)):
            if gj != gi and asg[gj] != s:
                continue
            if gj != gi and (gi, gj) in anti:
                self.reasons["anti_affinity"] += 1
                return None
            g = self.req.groups[gj]
            if self.current.get(g.group_id) != sid:  # a group staying put needs nothing new
                tot = g.total
                need = (need[0] + tot[0], need[1] + tot[1], need[2] + tot[2])
        if need != (0.0, 0.0, 0.0) and not _fits(self.free(sid), need):
            self.reasons["compute"] += 1
            return None
        score += un
        for di, d in enumerate(self.req.demands):
            a, t = self.gidx[d.from_group], self.targets[di]
            if t.group < 0:
                continue
            if a == gi and asg[t.group] >= 0:
                ps = self.pair_score(di, s, asg[t.group])
            elif t.group == gi and asg[a] >= 0:
                ps = self.pair_score(di, asg[a], s)
            else:
                continue
            if isinstance(ps, str):
                self.reasons[ps] += 1
                return None
            score += ps
        return score

    # -------------------------------------------------------------------------- exact
    def route_all(self, asg: tuple[int, ...]) -> _Exact | str:
        """Route every demand of an assignment on one shared residual copy (exact)."""
        res = list(self.res)
        out: list[tuple[int, Route]] = []
        order = sorted(range(len(self.req.demands)),
                       key=lambda i: (-self.req.demands[i].bandwidth_mbps, self.req.demands[i].demand_id))
        score = cost = 0.0
        for gi, s in enumerate(asg):
            g = self.req.groups[gi]
            cost += g.count * g.vcpus * self.state.topology.sites[self.net.site_ids[s]].cost_per_vcpu_hour
        score = cost
        for gi, s in enumerate(asg):
            cur = self.current.get(self.req.groups[gi].group_id)
            if cur is not None and cur != self.net.site_ids[s]:
                g = self.req.groups[gi]
                score += self.cfg.migration_cost_per_vcpu * g.count * g.vcpus
        lat = 0.0
        for di in order:
            d, t = self.req.demands[di], self.targets[di]
            src = asg[self.gidx[d.from_group]]
            dst = asg[t.group] if t.group >= 0 else t.site
            if dst < 0:
                return "latency"
            r = route_demand(self.net, res, self.w, src, dst, d.bandwidth_mbps,
                             d.max_latency_ms, self.transit, d.diverse, t.access_ms,
                             self.cfg.network_weight, self.pwc)
            if isinstance(r, str):
                return f"{r}: demand {d.demand_id!r}"
            commit(res, r)
            out.append((di, r))
            cost += r.cost
            score += r.cost + self.cfg.network_weight * r.weight
            lat = max(lat, r.latency_ms)
        ceiling = self.req.rules.cost_ceiling
        if ceiling > 0 and cost > ceiling + EPS:
            return f"cost_ceiling: cost {cost:.3f} > ceiling {ceiling:.3f}"
        return out, cost, score, lat

    def solve(self) -> Decision:
        req = self.req
        cands = self.candidates()
        if isinstance(cands, tuple):
            return rejected(req, cands[0], cands[1])
        tops: list[list[int]] = []
        for gi, lst in enumerate(cands):
            self._cands[gi] = set(lst)
            top = self.top(gi, self.cfg.candidates_per_group)
            if not top:
                why = self.why[gi]
                name = min(why, key=lambda k: (-why[k], k)) if why else "compute"
                gid = req.groups[gi].group_id
                return rejected(req, name, f"group {gid!r}: no candidate site meets {name} "
                                f"for its demands ({len(lst)} sites tried)")
            tops.append(top)
        complete = self.beam(tops)
        if not complete:
            name = min(self.reasons, key=lambda k: (-self.reasons[k], k)) if self.reasons else "compute"
            return rejected(req, name, f"no site assignment satisfies {name} "
                            f"({sum(self.reasons.values())} partial assignments pruned)")
        results: list[tuple[tuple[int, ...], float, _Exact | str]] = []
        for est_score, asg in complete:
            r = self.route_all(asg)
            results.append((asg, est_score, r))
        feasible = sorted(((r[2], asg, r) for asg, _, r in results if not isinstance(r, str)),
                          key=lambda t: (t[0], t[1]))
        alts = self._alternatives(results, feasible)
        if not feasible:
            first = results[0][2]
            assert isinstance(first, str)
            name = first.split(":", 1)[0]
            return rejected(req, name, f"best assignment fails: {first}", alts)
        score, asg, (routes, cost, _, lat) = feasible[0]
        placements = tuple((g.group_id, self.net.site_ids[s], g.count)
                           for g, s in zip(req.groups, asg))
        paths = self.reservations(routes)
        where = ", ".join(f"{g}@{s}" for g, s, _ in placements)
        summary = (f"placed {where}; {len(paths)} path(s), {req.bandwidth_mbps:g} Mbps; "
                   f"best of {len(results)} assignments routed exactly (beam {self.cfg.beam_width})")
        return Decision(Kind.PLACED, req.workload_id, req.tenant, req.request_id, placements,
                        paths, cost, lat, score, None, Explanation(summary, alts), request=req)

    def reservations(self, routes: list[tuple[int, Route]], revision: int = 0) -> tuple[Reservation, ...]:
        out: list[Reservation] = []
        net = self.net
        for di, r in sorted(routes, key=lambda t: self.req.demands[t[0]].demand_id):
            did = self.req.demands[di].demand_id
            for i, (p, x) in enumerate(r.alloc):
                rid = f"{self.req.workload_id}/{did}/{i}" + (f".r{revision}" if revision else "")
                out.append(Reservation(
                    rid, self.req.workload_id, did, tuple(net.site_ids[n] for n in p.nodes),
                    tuple(net.link_ids[d >> 1] for d in p.dirs), p.dirs, x, p.latency_ms))
        return tuple(out)

    def _alternatives(self, results: list[tuple[tuple[int, ...], float, _Exact | str]],
                      feasible: list[tuple[float, tuple[int, ...], _Exact]]) -> tuple[Alternative, ...]:
        """The winner and the runners-up (then the failures), each with why it lost."""
        alts: list[Alternative] = []
        win = feasible[0] if feasible else None
        for sc, asg, r in feasible[: self.cfg.alternatives]:
            alts.append(Alternative(self._pl(asg), r[1], r[3], sc, _why_lost(r, sc, win)))
        for asg, est, fail in results:
            if len(alts) >= self.cfg.alternatives:
                break
            if isinstance(fail, str):
                alts.append(Alternative(self._pl(asg), 0.0, 0.0, est, f"infeasible: {fail}"))
        return tuple(alts)

    def _pl(self, asg: tuple[int, ...]) -> tuple[tuple[str, str], ...]:
        return tuple((g.group_id, self.net.site_ids[s]) for g, s in zip(self.req.groups, asg))



def _why_lost(r: _Exact, score: float, win: tuple[float, tuple[int, ...], _Exact] | None) -> str:
    if win is None or r is win[2]:
        return ""
    wsc, _, w = win
    parts = [f"score {score:.4g} > winner {wsc:.4g}"]
    if r[1] > w[1] + EPS:
        parts.append(f"costs {r[1]:.4g}/h vs {w[1]:.4g}/h")
    net, wnet = score - r[1], wsc - w[1]
    if net > wnet + EPS:
        parts.append(f"WAN usage {net:.4g} vs {wnet:.4g} (more or busier links)")
    if r[3] > w[3] + EPS:
        parts.append(f"latency {r[3]:.3g} ms vs {w[3]:.3g} ms")
    if len(parts) == 1:
        parts.append("tie broken by site ids")
    return "; ".join(parts)


def _fits(free: tuple[float, float, float], need: tuple[float, float, float]) -> bool:
    return free[0] >= need[0] - EPS and free[1] >= need[1] - EPS and free[2] >= need[2] - EPS
