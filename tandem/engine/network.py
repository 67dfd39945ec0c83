"""A `Topology` compiled for the hot path of the joint engine.

`decide()` must answer in a few milliseconds on a 40-site WAN with a thousand workloads, so it
never walks the `Topology` mappings or calls networkx. This module turns a topology into flat
tuples indexed by integers: sites by position, and each link *direction* `2*i` (a→b) or
`2*i+1` (b→a), because capacity is reserved per direction (`Link.capacity_from`).

Candidate paths per ordered site pair are computed once per topology *structure* (link ids,
endpoints, latencies) and cached: a link going down, degrading or fading changes capacities,
not structure, so the cache survives it and a dead link simply has zero residual capacity.
The candidate set per pair is the union of the k shortest simple paths by latency (Yen) and a
set of link-disjoint shortest paths, so that the engine sees both low-latency alternatives and
paths that avoid one another (diversity, splitting, failures).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from .jurisdiction import normalise
from .topology import Link, SiteState, Topology

# Fibre: light travels ~200 km per ms; cables are ~1.5 times longer than the great circle.
KM_PER_MS = 200.0
ROUTE_FACTOR = 1.5


@dataclass(frozen=True, slots=True)
class Path:
    """A loop-free path between two sites, as directions over the compiled network."""

    nodes: tuple[int, ...]
    dirs: tuple[int, ...]
    latency_ms: float
    # Countries crossed by any link of the path (its endpoints' countries included).
    countries: frozenset[str]
    cost_per_mbps: float

    @property
    def links(self) -> tuple[int, ...]:
        return tuple(d >> 1 for d in self.dirs)


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))


def access_latency_ms(km: float) -> float:
    """One-way latency of reaching a user location `km` away over fibre."""
    return km * ROUTE_FACTOR / KM_PER_MS


@dataclass(slots=True)
class _PathCache:
    """Shared by every `Network` compiled from the same topology structure."""

    k: int
    adj: tuple[tuple[tuple[int, int, float], ...], ...]  # node -> (neighbour, dir, latency)
    paths: dict[tuple[int, int], tuple[Path, ...]] = field(default_factory=dict)
    within: dict[tuple[int, int, frozenset[str]], tuple[Path, ...]] = field(default_factory=dict)
    near: dict[int, tuple[int, ...]] = field(default_factory=dict)
    bound: dict[tuple[int, int, float], float] = field(default_factory=dict)


_CACHES: dict[tuple[object, ...], _PathCache] = {}
_MAX_CACHES = 16


class Network:
    """Immutable integer view of a topology at one instant (`at`, for capacity windows)."""

    __slots__ = (
        "topology", "at", "site_ids", "index", "link_ids", "links", "cap", "dir_from",
        "link_lat", "link_cost", "link_countries", "site_country", "_cache",
    )

    def __init__(self, topology: Topology, at: float | None = None, k: int = 4) -> None:
        self.topology = topology
        self.at = at
        self.site_ids: tuple[str, ...] = tuple(topology.sites)
        extra = sorted({e for ln in topology.links.values() for e in (ln.a, ln.b)} - set(self.site_ids))
        self.site_ids += tuple(extra)  # endpoints without a Site record still route traffic
        self.index: dict[str, int] = {s: i for i, s in enumerate(self.site_ids)}
        self.link_ids: tuple[str, ...] = tuple(topology.links)
        self.links: tuple[Link, ...] = tuple(topology.links.values())
        cap: list[float] = []
        dir_from: list[int] = []
        down = {sid for sid, st in topology.sites.items() if st.state is SiteState.DOWN}
        for ln in self.links:
            # A down site is down as a WAN node too: nothing crosses it.
            cut = ln.a in down or ln.b in down
            cap.append(0.0 if cut else ln.capacity_from(ln.a, at))
            cap.append(0.0 if cut else ln.capacity_from(ln.b, at))
            dir_from.append(self.index[ln.a])
            dir_from.append(self.index[ln.b])
        self.cap: tuple[float, ...] = tuple(cap)
        self.dir_from: tuple[int, ...] = tuple(dir_from)
        self.link_lat: tuple[float, ...] = tuple(ln.latency_ms for ln in self.links)
        self.link_cost: tuple[float, ...] = tuple(ln.cost_per_mbps for ln in self.links)
        self.site_country: tuple[str, ...] = tuple(
            normalise(topology.sites[s].jurisdiction) if s in topology.sites else ""
            for s in self.site_ids
        )
        lc: list[frozenset[str]] = []
        for ln in self.links:
            cs = {normalise(c) for c in ln.jurisdictions}
            cs |= {self.site_country[self.index[ln.a]], self.site_country[self.index[ln.b]]}
            cs.discard("")
            lc.append(frozenset(cs))
        self.link_countries: tuple[frozenset[str], ...] = tuple(lc)
        key = (k, self.site_ids, tuple((ln.link_id, ln.a, ln.b, ln.latency_ms) for ln in self.links))
        cache = _CACHES.get(key)
        if cache is None:
            if len(_CACHES) >= _MAX_CACHES:
                _CACHES.pop(next(iter(_CACHES)))
            adj: list[list[tuple[int, int, float]]] = [[] for _ in self.site_ids]
            for i, ln in enumerate(self.links):
                a, b = self.index[ln.a], self.index[ln.b]
                adj[a].append((b, 2 * i, ln.latency_ms))
                adj[b].append((a, 2 * i + 1, ln.latency_ms))
            cache = _PathCache(k, tuple(tuple(sorted(x)) for x in adj))
            _CACHES[key] = cache
        self._cache = cache

    def with_capacity(self, topology: Topology, at: float | None = None) -> Network:
        """Recompile for a new topology (the path cache is reused when the structure matches)."""
        return Network(topology, at, self._cache.k)

    # ----------------------------------------------------------------------------- paths
    def paths(self, src: int, dst: int) -> tuple[Path, ...]:
        """Candidate paths src→dst sorted by (latency, hops, dirs); cached per structure."""
        key = (src, dst)
        got = self._cache.paths.get(key)
        if got is None:
            got = self._compute_paths(src, dst)
            self._cache.paths[key] = got
        return got

    def paths_within(self, src: int, dst: int, allowed: frozenset[str]) -> tuple[Path, ...]:
        """Link-disjoint shortest paths that cross only `allowed` countries (transit rules).

        The k candidates of `paths` may all cross a forbidden country while a compliant detour
        exists; this searches the pruned graph so a transit rule is never rejected for want
        of a candidate.
        """
        key = (src, dst, allowed)
        got = self._cache.within.get(key)
        if got is None:
            ok = tuple(
                self.link_countries[d >> 1] <= allowed for d in range(2 * len(self.links))
            )
            out: list[Path] = []
            banned: set[int] = set()
            for _ in range(2):
                sp = dijkstra(self._cache.adj, src, dst, banned_links=banned, allowed_dirs=ok)
                if sp is None:
                    break
                out.append(self.make_path(*sp))
                banned |= {d >> 1 for d in sp[1]}
            got = tuple(out)
            self._cache.within[key] = got
        return got

    def unit_bound(self, src: int, dst: int, nw: float) -> float:
        """Lowest possible score per Mbps src→dst: cost per Mbps + nw x hops (idle links)."""
        key = (src, dst, nw)
        got = self._cache.bound.get(key)
        if got is None:
            ps = self.paths(src, dst)
            got = min((p.cost_per_mbps + nw * len(p.dirs) for p in ps), default=0.0)
            self._cache.bound[key] = got
        return got

    def near(self, site: int) -> tuple[int, ...]:
        """Other sites by increasing shortest-path latency from `site` (unreachable omitted)."""
        got = self._cache.near.get(site)
        if got is None:
            order = []
            for t in range(len(self.site_ids)):
                if t != site:
                    ps = self.paths(site, t)
                    if ps:
                        order.append((ps[0].latency_ms, t))
            got = tuple(t for _, t in sorted(order))
            self._cache.near[site] = got
        return got

    def warm(self) -> None:
        """Fill the path cache for every pair (benchmarks call this before timing)."""
        n = len(self.site_ids)
        for s in range(n):
            for t in range(n):
                if s != t:
                    self.paths(s, t)
            self.near(s)

    def make_path(self, nodes: tuple[int, ...], dirs: tuple[int, ...]) -> Path:
        lat = sum(self.link_lat[d >> 1] for d in dirs)
        countries: set[str] = set()
        cost = 0.0
        for d in dirs:
            countries |= self.link_countries[d >> 1]
            cost += self.link_cost[d >> 1]
        for n in nodes:
            if self.site_country[n]:
                countries.add(self.site_country[n])
        return Path(nodes, dirs, lat, frozenset(countries), cost)

    def _compute_paths(self, src: int, dst: int) -> tuple[Path, ...]:
        k = self._cache.k
        found: dict[tuple[int, ...], tuple[tuple[int, ...], tuple[int, ...]]] = {}
        for nodes, dirs in yen(self._cache.adj, src, dst, k):
            found[dirs] = (nodes, dirs)
        banned: set[int] = set()
        for _ in range(k):
            sp = dijkstra(self._cache.adj, src, dst, banned_links=banned)
            if sp is None:
                break
            found.setdefault(sp[1], sp)
            banned |= {d >> 1 for d in sp[1]}
        out = [self.make_path(n, d) for n, d in found.values()]
        out.sort(key=lambda p: (p.latency_ms, len(p.dirs), p.dirs))
        return tuple(out)

    def shortest(
        self, src: int, dst: int, usable_dir: Iterable[bool] | None = None, by_hops: bool = False
    ) -> Path | None:
        """Shortest path by latency (or hops) over the directions marked usable (CSPF)."""
        allowed = None if usable_dir is None else tuple(usable_dir)
        sp = dijkstra(self._cache.adj, src, dst, allowed_dirs=allowed, by_hops=by_hops)
        return None if sp is None else self.make_path(*sp)


def dijkstra(
    adj: tuple[tuple[tuple[int, int, float], ...], ...],
    src: int,
    dst: int,
    banned_links: set[int] | None = None,
    banned_nodes: set[int] | None = None,
    banned_dirs: set[int] | None = None,
    allowed_dirs: tuple[bool, ...] | None = None,
    by_hops: bool = False,
) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Deterministic shortest path: ties broken by hop count then by the direction sequence."""
    best: dict[int, tuple[float, int]] = {src: (0.0, 0)}
    prev: dict[int, tuple[int, int]] = {}
    heap: list[tuple[float, int, int]] = [(0.0, 0, src)]
    done: set[int] = set()
    while heap:
        dist, hops, u = heapq.heappop(heap)
        if u in done:
            continue
        done.add(u)
        if u == dst:
            break
        for v, d, lat in adj[u]:
            if v in done or (banned_nodes and v in banned_nodes):
                continue
            if banned_links and (d >> 1) in banned_links:
                continue
            if banned_dirs and d in banned_dirs:
                continue
            if allowed_dirs is not None and not allowed_dirs[d]:
                continue
            nd = dist + (1.0 if by_hops else lat)
            cand = (nd, hops + 1)
            old = best.get(v)
            if old is None or cand < old:
                best[v] = cand
                prev[v] = (u, d)
                heapq.heappush(heap, (nd, hops + 1, v))
    if dst not in done:
        return None
    nodes = [dst]
    dirs: list[int] = []
    while nodes[-1] != src:
        u, d = prev[nodes[-1]]
        dirs.append(d)
        nodes.append(u)
    return tuple(reversed(nodes)), tuple(reversed(dirs))


def yen(
    adj: tuple[tuple[tuple[int, int, float], ...], ...], src: int, dst: int, k: int
) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Yen's k shortest loop-free paths by latency, deterministic."""
    first = dijkstra(adj, src, dst)
    if first is None:
        return []
    lat = {d: w for u in adj for _, d, w in u}

    def weight(dirs: tuple[int, ...]) -> float:
        return sum(lat[d] for d in dirs)

    a = [first]
    cands: list[tuple[float, int, tuple[int, ...], tuple[int, ...]]] = []
    seen = {first[1]}
    while len(a) < k:
        nodes, dirs = a[-1]
        for i in range(len(nodes) - 1):
            root_nodes, root_dirs = nodes[: i + 1], dirs[:i]
            banned_dirs = {p[1][i] for p in a if p[0][: i + 1] == root_nodes and len(p[1]) > i}
            spur = dijkstra(
                adj, nodes[i], dst, banned_dirs=banned_dirs, banned_nodes=set(root_nodes[:-1])
            )
            if spur is None:
                continue
            tot_nodes, tot_dirs = root_nodes + spur[0][1:], root_dirs + spur[1]
            if tot_dirs not in seen:
                seen.add(tot_dirs)
                heapq.heappush(cands, (weight(tot_dirs), len(tot_dirs), tot_dirs, tot_nodes))
        if not cands:
            break
        _, _, cd, cn = heapq.heappop(cands)
        a.append((cn, cd))
    return a
