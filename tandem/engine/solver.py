"""The search over site assignments and the exact routing that ends a joint decision.

Why this shape: the best site of each group depends on where the groups it talks to are, so
groups cannot be placed one by one; trying every combination is exponential. A beam search
over groups (anchored groups first, then their chattiest partners) keeps the best few partial
assignments, extending each with the group's best unary sites (`scoring.SiteScorer`) *and*
the partner's own site and its nearest feasible neighbours, scored by routing the
group-to-group demands alone. Those estimates ignore that a workload's demands compete for the
same links, so the best complete assignments are then routed exactly on one shared residual
copy (largest demand first) and checked against the cost ceiling; the lowest exact score wins
and the others become the decision's explanation (why each lost, or failed).
"""

from __future__ import annotations

import heapq

from .decision import Alternative, Decision, Explanation, Kind, Reservation, rejected
from .routing import Fail, ResidualArrays, Route, commit, route_demand
from .scoring import EPS, SiteScorer

# An exactly routed assignment: (routes per demand index, cost, score, worst latency).
_Exact = tuple[list[tuple[int, Route]], float, float, float]


class Solver(SiteScorer):
    """One decision: site scoring (inherited) plus the beam search and exact routing."""

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
        anti = self.anti
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
        tried = 0  # candidate sites scored: bounded, the nearest may all be infeasible
        for s in self.net.near(site):
            if len(out) > self.cfg.near_partner or tried >= self.cfg.max_unary_evals:
                break
            if s in self._cands[gi]:
                tried += 1
                if self.unary_of(gi, s) is not None:
                    out.append(s)
        return out

    def _extend(self, gi: int, s: int, asg: tuple[int, ...], anti: frozenset[tuple[int, int]],
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
            if isinstance(ps, Fail):
                self.reasons[ps.constraint] += 1
                return None
            score += ps
        return score

    # -------------------------------------------------------------------------- exact
    def route_all(self, asg: tuple[int, ...]) -> _Exact | str:
        """Route every demand of an assignment on one shared residual copy (exact)."""
        res = list(self.res)
        arrays = ResidualArrays(self.net, res, self.w, self.cfg.network_weight)
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
            r = route_demand(self.net, res, self.w, src, dst, d.bandwidth_mbps,
                             d.max_latency_ms, self.transit, d.diverse, t.access_ms,
                             self.cfg.network_weight, self.pwc, arrays)
            if isinstance(r, Fail):
                return f"{r.constraint}: demand {d.demand_id!r}: {r.detail}"
            commit(res, r, arrays)
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
        bad = self.target_error()
        if bad is not None:
            return rejected(req, bad[0], bad[1])
        cands = self.candidates()
        if isinstance(cands, tuple):
            return rejected(req, cands[0], cands[1])
        tops: list[list[int]] = []
        for gi, lst in enumerate(cands):
            self._cands[gi] = set(lst)
            top = self.top(gi, self.cfg.candidates_per_group)
            if not top:
                return rejected(req, *self._group_rejection(gi, len(lst)))
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
