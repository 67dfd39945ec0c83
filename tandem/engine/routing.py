"""Routing one demand on the residual network: constrained candidate paths, split if needed.

Shared by the joint engine (to score a site assignment and to reserve its paths), by the
reaction (reroute) and by the MILP (same candidate paths, same weights), so the three agree on
what a path costs. A path is admissible when its latency (plus the access latency to a user
location) is within the bound and every country it crosses is allowed by the transit rule (a
site or link of unknown country never is). A demand prefers one path; when no single
admissible path has the bandwidth it is split over several in increasing weight. A `diverse`
demand gets 1+1 protection: its full bandwidth on two link-disjoint paths.

The cached candidate paths are few per pair (fast, and good enough nearly always). When they
cannot carry a demand, the *residual network* is searched before anything is refused: only
directions with the bandwidth left, the latency bound and the transit rule (`Network.
residual_path`), first by routing weight, then by latency, which proves whether any path
qualifies at all. So a refusal names the constraint that really failed, checked on the whole
network: `transit_jurisdiction` (no compliant path exists), `latency` (compliant paths exist,
none within the bound), `bandwidth` (some fit the bound, none has the bandwidth, alone or
split), `diversity` (no two link-disjoint admissible paths exist).

Weights make the engine steer away from loaded links: a direction at utilisation u weighs
1/(1-u) (capped), so the same Mbps costs ten times more on a link at 90% than on an idle one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .jurisdiction import UNKNOWN, describe
from .network import Network, Path
from .kernels import FloatArray

EPS = 1e-6
MAX_UTIL_FOR_WEIGHT = 0.95
INF = float("inf")
# A split found on the residual network uses at most this many paths.
MAX_SPLIT = 8


@dataclass(slots=True)
class Route:
    """Paths with the bandwidth on each, and what they cost."""

    alloc: list[tuple[Path, float]]
    weight: float  # sum of bandwidth x path weight (congestion-aware network usage)
    cost: float  # sum of bandwidth x cost per Mbps (currency per hour)
    latency_ms: float  # worst path latency, access latency included


@dataclass(frozen=True, slots=True)
class Fail:
    """Why a demand cannot be routed: the constraint that failed, and what was found."""

    constraint: str
    detail: str

    def __str__(self) -> str:
        return f"{self.constraint}: {self.detail}"


class ResidualArrays:
    """The residual capacity and the routing weight per direction as arrays, for searches of
    the residual network; made once (and only if needed) per residual, not per search."""

    def __init__(self, net: Network, res: Sequence[float], w: Sequence[float],
                 nw: float) -> None:
        self.net, self.res, self.w, self.nw = net, res, w, nw
        self._room: FloatArray | None = None
        self._weight: FloatArray | None = None

    @property
    def room(self) -> FloatArray:
        if self._room is None:
            self._room = np.asarray(self.res, dtype=np.float64)
        return self._room

    @property
    def weight(self) -> FloatArray:
        """Cost per Mbps + nw x congestion weight of each direction."""
        if self._weight is None:
            self._weight = self.net.cost_array() + self.nw * np.asarray(self.w, dtype=np.float64)
        return self._weight


def direction_weights(net: Network, used: Sequence[float]) -> list[float]:
    cap = net.cap_array()
    u = np.asarray(used, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = 1.0 / (1.0 - np.minimum(u / cap, MAX_UTIL_FOR_WEIGHT))
    out: list[float] = np.where(cap > 0, w, INF).tolist()
    return out


def _blocker(net: Network, p: Path, transit: frozenset[str]) -> str:
    """The first site or link of `p`, in path order, that the transit rule refuses."""
    for i, n in enumerate(p.nodes):
        c = net.site_country[n]
        if c == UNKNOWN or c not in transit:
            return f"site {net.site_ids[n]!r} ({describe(c)})"
        if i < len(p.dirs):
            li = p.dirs[i] >> 1
            bad = sorted(c for c in net.link_countries[li] if c == UNKNOWN or c not in transit)
            if bad:
                return f"link {net.link_ids[li]!r} ({describe(bad[0])})"
    return "?"


def admissible(
    net: Network, src: int, dst: int, max_latency: float, transit: frozenset[str]
) -> Sequence[Path] | Fail:
    """Candidate paths meeting latency and transit rules, or the rule that failed.

    Exact on the whole network, not only on the candidates: the candidates include the
    latency-shortest path and, under a transit rule, the latency-shortest compliant one.
    """
    cands = net.paths(src, dst)
    a, b = net.site_ids[src], net.site_ids[dst]
    if not cands:
        return Fail("bandwidth", f"no link path connects {a} to {b}")
    if transit:
        ok = [p for p in cands if p.countries <= transit and UNKNOWN not in p.countries]
        seen = {p.dirs for p in ok}
        ok += [p for p in net.paths_within(src, dst, transit) if p.dirs not in seen]
        if not ok:
            where = ", ".join(dict.fromkeys(_blocker(net, p, transit) for p in cands[:3]))
            return Fail("transit_jurisdiction",
                        f"no path {a}→{b} crosses only allowed countries (refused: {where})")
        cands = tuple(ok)
    if max_latency > 0:
        within = [p for p in cands if p.latency_ms <= max_latency + 1e-9]
        if not within:
            best = min(p.latency_ms for p in cands)
            rule = "compliant " if transit else ""
            return Fail("latency", f"the shortest {rule}path {a}→{b} takes {best:.4g} ms, "
                        f"over the {max_latency:.4g} ms left of the bound")
        return within
    return cands


def route_demand(
    net: Network,
    res: list[float],
    w: list[float],
    src: int,
    dst: int,
    bw: float,
    max_latency: float,
    transit: frozenset[str],
    diverse: bool,
    access_ms: float = 0.0,
    nw: float = 0.01,
    pwc: dict[int, float] | None = None,
    arrays: ResidualArrays | None = None,
    single: bool = True,
) -> Route | Fail:
    """Best allocation of `bw` from src to dst on residual `res` (not modified), or a reason.

    `max_latency` is the end-to-end bound (0 = none); `access_ms` the part of it already spent
    reaching a user location. Paths are ranked by cost per Mbps + `nw` x congestion weight,
    the same unit score as the MILP; `pwc` caches path weights for one decision, `arrays`
    the residual as arrays (it must describe `res` and `w`). `single=False` says the caller
    knows no single path qualifies (no search for one on the residual network).
    """
    if src == dst:
        if max_latency > 0 and access_ms > max_latency + 1e-9:
            return Fail("latency", f"access latency {access_ms:.4g} ms > {max_latency:.4g} ms")
        return Route([], 0.0, 0.0, access_ms)
    budget = 0.0
    if max_latency > 0:
        budget = max_latency - access_ms
        if budget < 0:
            return Fail("latency", f"access latency {access_ms:.4g} ms alone exceeds "
                        f"the {max_latency:.4g} ms bound")
    cands_or = admissible(net, src, dst, budget if budget > 0 else (1e-12 if max_latency
                                                                     else 0.0), transit)
    if isinstance(cands_or, Fail):
        return cands_or
    # One pass: path weight (cached per path object for this decision), and the cheapest
    # single path with the bandwidth; the full ranking is only built when needed.
    best: Path | None = None
    best_key = INF
    best_pw = 0.0
    for p in cands_or:
        pw = pwc.get(id(p)) if pwc is not None else None
        if pw is None:
            pw = 0.0
            for d in p.dirs:
                pw += w[d]
            if pwc is not None:
                pwc[id(p)] = pw
        if pw == INF or diverse:
            continue
        key = p.cost_per_mbps + nw * pw
        if best is not None and (key > best_key or (key == best_key and (
                p.latency_ms, p.dirs) >= (best.latency_ms, best.dirs))):
            continue
        for d in p.dirs:
            if res[d] < bw - EPS:
                break
        else:
            best, best_key, best_pw = p, key, pw
    if best is not None:
        return Route([(best, bw)], bw * best_pw, bw * best.cost_per_mbps,
                     best.latency_ms + access_ms)
    scored = sorted(((p.cost_per_mbps + nw * pw, p.latency_ms, p.dirs, p, pw) for p in cands_or
                     if (pw := _pw(p, w, pwc)) < INF), key=lambda t: (t[0], t[1], t[2]))
    search = _Residual(arrays or ResidualArrays(net, res, w, nw), src, dst,
                       budget if max_latency > 0 else INF, transit)
    if diverse:
        pair = _diverse(res, scored, bw, access_ms)
        return pair if pair is not None else search.diverse(bw, access_ms, cands_or)
    one = search.path(bw - EPS) if single else None
    if one is not None:
        pw = sum(w[d] for d in one.dirs)
        return Route([(one, bw)], bw * pw, bw * one.cost_per_mbps, one.latency_ms + access_ms)
    # Split over the candidates, cheapest first, sharing directions through `delta`.
    delta: dict[int, float] = {}
    alloc: list[tuple[Path, float]] = []
    rem = bw
    for _, _, _, p, pw in scored:
        avail = min(res[d] - delta.get(d, 0.0) for d in p.dirs)
        if avail <= EPS or (avail < 0.01 * bw and avail < rem - EPS):
            continue
        x = min(avail, rem)
        alloc.append((p, x))
        for d in p.dirs:
            delta[d] = delta.get(d, 0.0) + x
        rem -= x
        if rem <= EPS:
            return _route(alloc, w, access_ms)
    return search.split(bw, access_ms)


def _pw(p: Path, w: list[float], pwc: dict[int, float] | None) -> float:
    pw = pwc.get(id(p)) if pwc is not None else None
    if pw is None:
        pw = 0.0
        for d in p.dirs:
            pw += w[d]
        if pwc is not None:
            pwc[id(p)] = pw
    return pw


def _route(alloc: list[tuple[Path, float]], w: Sequence[float], access_ms: float) -> Route:
    weight = sum(x * sum(w[d] for d in p.dirs) for p, x in alloc)
    cost = sum(x * p.cost_per_mbps for p, x in alloc)
    return Route(alloc, weight, cost, max(p.latency_ms for p, _ in alloc) + access_ms)


class _Residual:
    """Searches of one demand on the residual network (see `Network.residual_path`)."""

    def __init__(self, arrays: ResidualArrays, src: int, dst: int, budget: float,
                 transit: frozenset[str]) -> None:
        self.arrays, self.net, self.src, self.dst = arrays, arrays.net, src, dst
        self.w = arrays.w
        self.budget = budget + 1e-9
        self.transit = transit

    def path(self, need: float, room: FloatArray | None = None,
             ban: Sequence[int] = ()) -> Path | None:
        """Cheapest qualifying path by routing weight, else any within the latency bound."""
        r = self.arrays.room if room is None else room
        net, s, t = self.net, self.src, self.dst
        p = net.residual_path(s, t, r, need, budget=self.budget, allowed=self.transit,
                              weight=self.arrays.weight, nw=self.arrays.nw, ban_links=ban)
        if p is None and self.budget < INF:  # the weight search may miss a slower-cheaper one
            p = net.residual_path(s, t, r, need, budget=self.budget, allowed=self.transit,
                                  ban_links=ban)
        return p

    def _what(self) -> str:
        a, b = self.net.site_ids[self.src], self.net.site_ids[self.dst]
        rules = " within the latency bound" if self.budget < INF else ""
        rules += " and the transit rule" if self.transit else ""
        return f"{a}→{b}: paths{rules} exist"

    def split(self, bw: float, access_ms: float) -> Route | Fail:
        """Greedy augmentation on the residual network: the cheapest qualifying path that can
        carry its share, its bottleneck, repeat; at most `MAX_SPLIT` paths."""
        room = self.arrays.room.copy()
        alloc: list[tuple[Path, float]] = []
        rem = bw
        if min(self.net.cut_room(self.src, room, self.transit),
               self.net.cut_room(self.dst, room, self.transit, into=True)) < bw - EPS:
            rem = INF  # the links at one end cannot carry it, however split
        while len(alloc) < MAX_SPLIT and EPS < rem < INF:
            # With k paths left, one of them must carry rem / k: ask for that much (and for
            # at least 1% of the demand), so hopeless splits fail in a search or two.
            need = max(min(rem, 0.01 * bw), rem / (MAX_SPLIT - len(alloc))) - EPS
            p = self.path(need, room)
            if p is None:
                break
            x = min(rem, float(min(room[d] for d in p.dirs)))
            alloc.append((p, x))
            for d in p.dirs:
                room[d] -= x
            rem -= x
        if rem <= EPS and alloc:
            return _route(alloc, self.w, access_ms)
        return Fail("bandwidth", f"{self._what()}, but none has {bw:g} Mbps free, alone or "
                    f"split over up to {MAX_SPLIT} paths")

    def diverse(self, bw: float, access_ms: float, cands: Sequence[Path]) -> Route | Fail:
        """Two link-disjoint paths with `bw` each on the residual network (greedy). Whether
        two link-disjoint admissible paths exist at all (on links up, reserved or not) is
        asked first: without them the answer is `diversity`, found with two searches."""
        pair = any(set(x.links).isdisjoint(y.links) for i, x in enumerate(cands)
                   for y in cands[i + 1:])
        if not pair:
            live = self.net.cap
            p = self.net.residual_path(self.src, self.dst, live, EPS, budget=self.budget,
                                       allowed=self.transit)
            pair = p is not None and self.net.residual_path(
                self.src, self.dst, live, EPS, budget=self.budget, allowed=self.transit,
                ban_links=p.links) is not None
        if not pair:
            return Fail("diversity", f"{self._what().split(':')[0]}: no two link-disjoint "
                        "admissible paths exist")
        first = self.path(bw - EPS)
        second = None if first is None else self.path(bw - EPS, ban=first.links)
        if first is not None and second is not None:
            return _route([(first, bw), (second, bw)], self.w, access_ms)
        return Fail("bandwidth", f"{self._what()}, but no two link-disjoint ones have "
                    f"{bw:g} Mbps free each")


def _diverse(res: list[float], scored: list[tuple[float, float, tuple[int, ...], Path, float]],
             bw: float, access_ms: float) -> Route | None:
    """The cheapest link-disjoint pair of candidates with `bw` free on both, or None."""
    fits = [t for t in scored if min(res[d] for d in t[3].dirs) >= bw - EPS]
    best: tuple[float, int, int] | None = None
    for i in range(len(fits)):
        li = set(fits[i][3].links)
        for j in range(i + 1, len(fits)):
            if li.isdisjoint(fits[j][3].links):
                tot = fits[i][0] + fits[j][0]
                if best is None or tot < best[0]:
                    best = (tot, i, j)
                break  # fits is sorted: the first disjoint partner of i is its best
    if best is None:
        return None
    _, i, j = best
    p, q = fits[i][3], fits[j][3]
    return Route(
        [(p, bw), (q, bw)], bw * (fits[i][4] + fits[j][4]), bw * (p.cost_per_mbps + q.cost_per_mbps),
        max(p.latency_ms, q.latency_ms) + access_ms,
    )


def commit(res: list[float], route: Route, arrays: ResidualArrays | None = None) -> None:
    """Take the route's bandwidth off `res` (and off `arrays`, made from `res`, if given)."""
    for p, x in route.alloc:
        for d in p.dirs:
            res[d] -= x
            if arrays is not None and arrays._room is not None:
                arrays._room[d] -= x
