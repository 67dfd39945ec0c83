"""Routing one demand on the residual network: constrained candidate paths, split if needed.

Shared by the joint engine (to score a site assignment and to reserve its paths), by the
reaction (reroute) and by the MILP (same candidate paths, same weights), so the three agree on
what a path costs. A path is admissible when its latency (plus the access latency to a user
location) is within the bound and every country it crosses is allowed by the transit rule. A
demand prefers one path; when no single admissible path has the bandwidth it is split over
several in increasing weight. A `diverse` demand gets 1+1 protection: its full bandwidth on two
link-disjoint paths.

Weights make the engine steer away from loaded links: a direction at utilisation u weighs
1/(1-u) (capped), so the same Mbps costs ten times more on a link at 90% than on an idle one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .network import Network, Path

EPS = 1e-6
MAX_UTIL_FOR_WEIGHT = 0.95
INF = float("inf")


@dataclass(slots=True)
class Route:
    """Paths with the bandwidth on each, and what they cost."""

    alloc: list[tuple[Path, float]]
    weight: float  # sum of bandwidth x path weight (congestion-aware network usage)
    cost: float  # sum of bandwidth x cost per Mbps (currency per hour)
    latency_ms: float  # worst path latency, access latency included


def direction_weights(net: Network, used: tuple[float, ...]) -> list[float]:
    out: list[float] = []
    for c, u in zip(net.cap, used):
        if c <= 0:
            out.append(INF)
        else:
            out.append(1.0 / (1.0 - min(u / c, MAX_UTIL_FOR_WEIGHT)))
    return out


def admissible(
    net: Network, src: int, dst: int, max_latency: float, transit: frozenset[str]
) -> Sequence[Path] | str:
    """Candidate paths meeting latency and transit rules, or the name of the rule that failed."""
    cands = net.paths(src, dst)
    if transit:
        within = net.paths_within(src, dst, transit)
        cands = tuple(p for p in cands if p.countries <= transit)
        seen = {p.dirs for p in cands}
        cands += tuple(p for p in within if p.dirs not in seen)
        if not cands:
            return "transit_jurisdiction"
    if max_latency > 0:
        ok = [p for p in cands if p.latency_ms <= max_latency + 1e-9]
        if not ok:
            return "latency"
        return ok
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
) -> Route | str:
    """Best allocation of `bw` from src to dst on residual `res` (not modified), or a reason.

    `max_latency` is the end-to-end bound (0 = none); `access_ms` the part of it already spent
    reaching a user location. Paths are ranked by cost per Mbps + `nw` x congestion weight,
    the same unit score as the MILP; `pwc` caches path weights for one decision.
    """
    if src == dst:
        if max_latency > 0 and access_ms > max_latency + 1e-9:
            return "latency"
        return Route([], 0.0, 0.0, access_ms)
    if max_latency > 0:
        budget = max_latency - access_ms
        if budget < 0:
            return "latency"
        cands_or = admissible(net, src, dst, budget if budget > 0 else 1e-12, transit)
    else:
        cands_or = admissible(net, src, dst, 0.0, transit)
    if isinstance(cands_or, str):
        return cands_or
    # One pass: path weight (cached per path object for this decision), and the cheapest
    # single path with the bandwidth; the full ranking is only built when splitting.
    best: Path | None = None
    best_key = INF
    best_pw = 0.0
    usable = False
    for p in cands_or:
        pw = pwc.get(id(p)) if pwc is not None else None
        if pw is None:
            pw = 0.0
            for d in p.dirs:
                pw += w[d]
            if pwc is not None:
                pwc[id(p)] = pw
        if pw == INF:
            continue
        usable = True
        if diverse:
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
    if not usable:
        return "bandwidth"
    if best is not None:
        return Route([(best, bw)], bw * best_pw, bw * best.cost_per_mbps,
                     best.latency_ms + access_ms)
    scored: list[tuple[float, float, tuple[int, ...], Path, float]] = []
    for p in cands_or:
        pw = pwc[id(p)] if pwc is not None else sum(w[d] for d in p.dirs)
        if pw < INF:
            scored.append((p.cost_per_mbps + nw * pw, p.latency_ms, p.dirs, p, pw))
    scored.sort(key=lambda t: (t[0], t[1], t[2]))
    if diverse:
        return _diverse(res, scored, bw, access_ms)
    # Split over several paths, cheapest first, sharing directions through `delta`.
    delta: dict[int, float] = {}
    alloc: list[tuple[Path, float]] = []
    rem = bw
    weight = cost = lat = 0.0
    for _, _, _, p, pw in scored:
        avail = min(res[d] - delta.get(d, 0.0) for d in p.dirs)
        if avail <= EPS or (avail < 0.01 * bw and avail < rem - EPS):
            continue
        x = min(avail, rem)
        alloc.append((p, x))
        for d in p.dirs:
            delta[d] = delta.get(d, 0.0) + x
        weight += x * pw
        cost += x * p.cost_per_mbps
        lat = max(lat, p.latency_ms)
        rem -= x
        if rem <= EPS:
            return Route(alloc, weight, cost, lat + access_ms)
    return "bandwidth"


def _diverse(
    res: list[float], scored: list[tuple[float, float, tuple[int, ...], Path, float]], bw: float,
    access_ms: float,
) -> Route | str:
    fits = [t for t in scored if min(res[d] for d in t[3].dirs) >= bw - EPS]
    best: tuple[float, int, int] | None = None
    for i in range(len(fits)):
        li = set(fits[i][3].dirs)
        li = {d >> 1 for d in li}
        for j in range(i + 1, len(fits)):
            if li.isdisjoint(d >> 1 for d in fits[j][3].dirs):
                tot = fits[i][0] + fits[j][0]
                if best is None or tot < best[0]:
                    best = (tot, i, j)
                break  # fits is sorted: the first disjoint partner of i is its best
    if best is None:
        any_pair = any(
            {d >> 1 for d in scored[i][3].dirs}.isdisjoint(d >> 1 for d in scored[j][3].dirs)
            for i in range(len(scored)) for j in range(i + 1, len(scored))
        )
        return "bandwidth" if any_pair else "diversity"
    _, i, j = best
    p, q = fits[i][3], fits[j][3]
    return Route(
        [(p, bw), (q, bw)], bw * (fits[i][4] + fits[j][4]), bw * (p.cost_per_mbps + q.cost_per_mbps),
        max(p.latency_ms, q.latency_ms) + access_ms,
    )


def commit(res: list[float], route: Route) -> None:
    for p, x in route.alloc:
        for d in p.dirs:
            res[d] -= x
