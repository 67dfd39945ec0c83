"""Which sites can host each VM group of a request, and at what score: the first half of
the joint decision (`solver.Solver` is the second: the search over assignments).

Why a separate stage: a 1,000-site WAN offers a group hundreds of candidate sites, and routing
a demand from each of them would cost the whole decision budget. So sites are filtered as
boolean arrays over all sites at once (activity, hypervisor, VM jurisdiction, free compute),
ruled out at once when no path from them meets a demand's transit rule or latency bound (one
distance array per target), and only then scored by routing, lazily, in order of a lower bound,
stopping as soon as the bound proves the best few found. What fails is remembered per site, so
a group with no feasible site is refused for the constraint of the site that came closest.

`SiteScorer` holds one decision's context: the residual network and routing weights of the
state, the request's demands resolved to targets (a user location to its entry site), and the
per-decision caches (routes of a demand between two sites, unary scores, room arrays).
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from .jurisdiction import describe
from .kernels import FloatArray
from .network import Network, access_latency_ms
from .routing import Fail, ResidualArrays, Route, admissible, direction_weights, route_demand
from .state import State
from .workload import Demand, WorkloadRequest

EPS = 1e-6
# When every candidate site of a group fails, the rejection names the constraint of the site
# that came closest to success: one whose paths met the transit rule and the latency bound
# but lacked bandwidth was refused for bandwidth, not for the latency of the other sites.
_CLOSEST_FIRST = ("cost_ceiling", "bandwidth", "diversity", "latency", "transit_jurisdiction")


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


@dataclass(slots=True)
class _Target:
    group: int  # index of the target group, or -1
    site: int  # fixed site index, or -1
    access_ms: float
    error: str = ""  # why a user location has no entry site (then site is -1)



class SiteScorer:
    """One decision's context and the scoring of candidate sites per group (see module doc)."""

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
        # Ordered pairs of group indices that may not share a site (the request's anti-affinity
        # rules), for the engine's search and the baselines alike.
        self.anti: frozenset[tuple[int, int]] = frozenset(
            (a, b) for aa in req.rules.anti_affinity for a in (self.gidx[x] for x in aa)
            for b in (self.gidx[x] for x in aa) if a != b)
        self.current = current or {}
        self.targets = [self._target(d) for d in req.demands]
        self.transit = req.rules.transit_jurisdictions
        self._est: dict[tuple[int, int, int], Route | Fail] = {}
        self._free: dict[str, tuple[float, float, float]] = {}
        self.pwc: dict[int, float] = {}  # path weight by id(path), for this decision
        self.arrays = ResidualArrays(self.net, self.res, self.w, self.cfg.network_weight)
        self._un: list[dict[int, float | Fail]] = [{} for _ in req.groups]
        self._cands: list[set[int]] = [set() for _ in req.groups]
        self.why: list[Counter[str]] = [Counter() for _ in req.groups]
        self.first_why: list[dict[str, str]] = [{} for _ in req.groups]
        self.unsplit: list[int] = [0 for _ in req.groups]  # sites not tried for a split
        self._room_to: dict[int, FloatArray] = {}
        self.reasons: Counter[str] = Counter()

    def _target(self, d: Demand) -> _Target:
        if d.to_group:
            return _Target(self.gidx[d.to_group], -1, 0.0)
        if d.to_site:
            return _Target(-1, self.net.index[d.to_site], 0.0)
        loc = d.to_location
        assert loc is not None
        where = f"user location {loc.city or 'without a name'} ({loc.latitude:g}, {loc.longitude:g})"
        if loc.latitude == 0.0 and loc.longitude == 0.0:
            return _Target(-1, -1, 0.0, f"{where} has no coordinates; give them, or name the "
                           "entry site as to_site")
        entry = self.net.entry_site(loc.latitude, loc.longitude)
        if entry is None:
            return _Target(-1, -1, 0.0, f"{where} cannot be attached: no site of the topology "
                           "that is up has coordinates; name the entry site as to_site")
        return _Target(-1, entry[0], access_latency_ms(entry[1]))

    def target_error(self) -> tuple[str, str] | None:
        """("location", detail) when a demand's user location has no entry site."""
        for d, t in zip(self.req.demands, self.targets):
            if t.error:
                return "location", f"demand {d.demand_id!r}: {t.error}"
        return None

    def free(self, site_id: str) -> tuple[float, float, float]:
        got = self._free.get(site_id)
        if got is None:
            got = self._free[site_id] = self.state.site_free(site_id)
        return got

    # --------------------------------------------------------------------- candidates
    def candidates(self) -> list[list[int]] | tuple[str, str]:
        """Feasible site indices per group, or (constraint, detail) when a group has none.

        Filters are boolean arrays over all sites (a 1,000-site WAN costs microseconds)."""
        net, rules = self.net, self.req.rules
        free = self.state.free_compute()
        out: list[list[int]] = []
        for g in self.req.groups:
            cur = net.active
            stages: list[tuple[str, npt.NDArray[np.bool_]]] = [("compute", cur)]
            if g.hypervisor:
                cur = cur & net.site_mask(hypervisor=g.hypervisor)
                stages.append(("hypervisor", cur))
            if rules.vm_jurisdictions:  # a site of unknown country is in no jurisdiction
                cur = cur & net.site_mask(countries=rules.vm_jurisdictions)
                stages.append(("vm_jurisdiction", cur))
            fits = np.asarray((free >= np.asarray(g.total) - EPS).all(axis=1), dtype=bool)
            stay = self.current.get(g.group_id)
            if stay is not None:
                fits[net.index[stay]] = True
            cur = cur & fits
            stages.append(("compute", cur))
            if not cur.any():
                i = next(i for i, (_, m) in enumerate(stages) if not m.any())
                name = stages[i][0]
                detail = f"no site for group {g.group_id!r} passes the {name} rule"
                if name == "vm_jurisdiction":  # name the refused sites and their countries
                    before = np.flatnonzero(stages[i - 1][1]).tolist()
                    refused = [f"{net.site_ids[s]} ({describe(net.site_country[s])})"
                               for s in before[:5]]
                    more = len(before) - len(refused)
                    detail += ": refused " + ", ".join(refused) + (f" and {more} more"
                                                                   if more > 0 else "")
                return name, detail
            out.append(np.flatnonzero(cur).tolist())
        return out

    # ------------------------------------------------------------------------ scoring
    def est(self, di: int, src: int, dst: int) -> Route | Fail:
        """Route demand `di` alone on the residual network (cached per decision)."""
        key = (di, src, dst)
        got = self._est.get(key)
        if got is None:
            d, t = self.req.demands[di], self.targets[di]
            far = self._room_to.get(di) if t.group < 0 else None
            budget = d.max_latency_ms - t.access_ms if d.max_latency_ms > 0 else float("inf")
            single = far is None or bool(np.isfinite(far[src]) and far[src] <= budget + 1e-9)
            got = route_demand(self.net, self.res, self.w, src, dst, d.bandwidth_mbps,
                               d.max_latency_ms, self.transit, d.diverse, t.access_ms,
                               self.cfg.network_weight, self.pwc, self.arrays, single)
            self._est[key] = got
        return got

    def unary(self, gi: int, s: int) -> float | Fail:
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
            r = self.est(di, s, t.site)
            if isinstance(r, Fail):
                return Fail(r.constraint, f"demand {d.demand_id!r}: {r.detail}")
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
            if isinstance(v, Fail):
                self.why[gi][v.constraint] += 1
                self.first_why[gi].setdefault(v.constraint, v.detail)
        return None if isinstance(v, Fail) else v

    def lower_bounds(self, gi: int, sites: list[int]) -> list[float]:
        """A cheap bound below `unary` for each site: compute cost, migration, and per Mbps
        to a fixed target the idle-network bound (every hop weighs at least 1)."""
        g = self.req.groups[gi]
        idx = np.asarray(sites, dtype=np.int64)
        lb = g.count * g.vcpus * self.net.site_cost()[idx]
        cur = self.current.get(g.group_id)
        if cur is not None:
            lb = lb + np.where(idx != self.net.index[cur],
                               self.cfg.migration_cost_per_vcpu * g.count * g.vcpus, 0.0)
        for di, d in enumerate(self.req.demands):
            t = self.targets[di]
            if self.gidx[d.from_group] == gi and t.group < 0 and t.site >= 0:
                ub = self.net.unit_bounds(t.site, self.cfg.network_weight)[idx]
                lb = lb + np.where(idx != t.site, d.bandwidth_mbps * ub, 0.0)
        out: list[float] = lb.tolist()
        return out

    def _reachable(self, gi: int, sites: list[int]) -> list[int]:
        """The sites from which every fixed-target demand of the group has a path meeting
        the transit rule and the latency bound, judged at once for all sites from one
        distance array per target (exactly what `admissible` would find, without computing
        candidate paths); the others are recorded as failed, with the constraint."""
        idx = np.asarray(sites, dtype=np.int64)
        bad = np.zeros(len(sites), dtype=np.int64)  # 0 ok, 1 no path, 2 transit, 3 latency
        which = np.full(len(sites), -1, dtype=np.int64)  # the demand that fails
        for di, d in enumerate(self.req.demands):
            t = self.targets[di]
            if self.gidx[d.from_group] != gi or t.group >= 0 or t.site < 0:
                continue
            far = self.net.latency_to(t.site, self.transit)[idx]
            worse = ~np.isfinite(far) & (idx != t.site)
            kind = np.where(worse, 1, 0)
            if self.transit:
                kind = np.where(worse & np.isfinite(self.net.latency_to(t.site)[idx]), 2, kind)
            if d.max_latency_ms > 0:
                budget = d.max_latency_ms - t.access_ms
                kind = np.where((kind == 0) & (far > budget + 1e-9) & (idx != t.site), 3, kind)
            new = (bad == 0) & (kind > 0)
            bad, which = np.where(new, kind, bad), np.where(new, di, which)
        if not bad.any():
            return sites
        names = ("bandwidth", "transit_jurisdiction", "latency")
        for s, b, di in zip(sites, bad.tolist(), which.tolist()):
            if b:
                name = names[b - 1]
                if name not in self.first_why[gi]:  # the detail: what `admissible` says
                    d, t = self.req.demands[di], self.targets[di]
                    budget = d.max_latency_ms - t.access_ms if d.max_latency_ms > 0 else 0.0
                    got = admissible(self.net, s, t.site, max(budget, 1e-12) if
                                     d.max_latency_ms > 0 else 0.0, self.transit)
                    why = got.detail if isinstance(got, Fail) else "no admissible path"
                    self.first_why[gi][name] = f"demand {d.demand_id!r}: {why}"
                self.why[gi][name] += 1
                self._un[gi][s] = Fail(name, "")
        return [s for s, b in zip(sites, bad.tolist()) if not b]

    def top(self, gi: int, m: int) -> list[int]:
        """The m candidate sites of lowest unary score, evaluating as few as the bounds allow.

        Sites are scored in order of a lower bound; the search stops when the bound exceeds
        the m-th best score (exact), or after `max_unary_evals` scored sites (approximate).
        """
        sites = self._reachable(gi, sorted(self._cands[gi]))
        heap = list(zip(self.lower_bounds(gi, sites), sites))
        heapq.heapify(heap)
        best: list[tuple[float, int]] = []
        evaluated = short = 0
        while heap:
            lb, s = heapq.heappop(heap)
            if len(best) >= m and (lb > best[m - 1][0] or evaluated >= self.cfg.max_unary_evals):
                break
            if short >= self.cfg.max_unary_evals and not self._single_ok(gi, s):
                # Enough sites failed for bandwidth: from here on only sites with a single
                # path that has the bandwidth are scored, not every site for a split.
                self.unsplit[gi] += 1
                continue
            evaluated += 1
            v = self.unary_of(gi, s)
            if v is not None:
                best.append((v, s))
                best.sort()
            else:
                why = self._un[gi].get(s)
                short += isinstance(why, Fail) and why.constraint == "bandwidth"
        return [s for _, s in best[:m]]

    def _single_ok(self, gi: int, s: int) -> bool:
        """Whether every fixed-target demand of the group has, from s, one path with its
        bandwidth free within its latency bound and transit rule (one search of the
        residual network per demand and decision, for all sites at once). A diverse demand
        needs two link-disjoint ones, which no such search shows: never ok."""
        for di, d in enumerate(self.req.demands):
            t = self.targets[di]
            if self.gidx[d.from_group] != gi or t.group >= 0 or t.site < 0 or s == t.site:
                continue
            if d.diverse:
                return False
            far = self._room_to.get(di)
            if far is None:
                far = self._room_to[di] = self.net.latency_to_with_room(
                    t.site, self.arrays.room, d.bandwidth_mbps - EPS, self.transit)
            budget = d.max_latency_ms - t.access_ms if d.max_latency_ms > 0 else float("inf")
            if not (np.isfinite(far[s]) and far[s] <= budget + 1e-9):
                return False
        return True

    def _group_rejection(self, gi: int, tried: int) -> tuple[str, str]:
        """(constraint, detail) for a group none of whose candidate sites is feasible."""
        why, gid = self.why[gi], self.req.groups[gi].group_id
        if not why:
            return "compute", f"group {gid!r}: no candidate site ({tried} tried)"
        name = min(why, key=lambda k: (_CLOSEST_FIRST.index(k) if k in _CLOSEST_FIRST
                                       else len(_CLOSEST_FIRST), k))
        counts = ", ".join(f"{why[k]} {k}" for k in sorted(why))
        more = (f"; {self.unsplit[gi]} more without a single path with the bandwidth were "
                "not tried for a split") if self.unsplit[gi] else ""
        return name, (f"group {gid!r}: no candidate site meets {name} for its demands "
                      f"({tried} sites, {sum(why.values())} scored: {counts}{more}); e.g. "
                      f"{self.first_why[gi][name]}")

    def pair_score(self, di: int, src: int, dst: int) -> float | Fail:
        r = self.est(di, src, dst)
        if isinstance(r, Fail):
            return r
        return r.cost + self.cfg.network_weight * r.weight
