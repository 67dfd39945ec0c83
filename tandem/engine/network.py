"""A `Topology` compiled for the hot path of the joint engine.

`decide()` must answer in milliseconds on a 1,000-site WAN with ten thousand workloads, so it
never walks the `Topology` mappings or calls networkx. This module turns a topology into flat
tuples indexed by integers: sites by position, and each link *direction* `2*i` (a→b) or
`2*i+1` (b→a), because capacity is reserved per direction (`Link.capacity_from`).

Everything about paths is computed lazily, per site pair or per site, and cached per topology
*structure* (link ids, endpoints, latencies, costs, countries): a link going down, degrading
or fading changes capacities, not structure, so the cache survives it and a dead link simply
has zero residual capacity. A decision therefore pays only for the pairs it touches:
- candidate paths per ordered pair: the union of the k shortest simple paths by latency (Yen)
  and k link-disjoint shortest paths (`paths`), plus, under a transit rule, compliant ones;
- one compiled single-source Dijkstra per site for `near()` and per target for the exact
  bounds that guide every search (`paths.Graph`);
- `residual_path`: a constrained search on the residual network (room, latency, transit),
  so that no demand is refused for want of a candidate while a path with room exists.

Countries are never dropped: a site or link of unknown country carries `UNKNOWN`, which no
rule admits, so a path through it can never pass a transit rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .jurisdiction import UNKNOWN, country
from .graph import Graph, Hop
from .kernels import ByteArray, FloatArray
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
    # Countries crossed by any link of the path (its endpoints' countries included), with
    # `UNKNOWN` for any site or link whose country is not known.
    countries: frozenset[str]
    cost_per_mbps: float
    # Link index of each hop (`dirs[i] >> 1`), stored: disjointness checks ask for it often.
    links: tuple[int, ...]


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
    graph: Graph  # every direction of every link, weighted by latency
    cost: FloatArray  # cost per Mbps of each direction
    paths: dict[tuple[int, int], tuple[Path, ...]] = field(default_factory=dict)
    within: dict[tuple[int, int, frozenset[str]], tuple[Path, ...]] = field(default_factory=dict)
    near: dict[int, tuple[int, ...]] = field(default_factory=dict)
    to: dict[tuple[int, frozenset[str]], FloatArray] = field(default_factory=dict)
    unit: dict[tuple[int, float], FloatArray] = field(default_factory=dict)
    masks: dict[frozenset[str], ByteArray] = field(default_factory=dict)
    # Countries as bits: names[b] is bit b; each site's and link's set as a mask.
    names: tuple[str, ...] = ()
    site_bits: tuple[int, ...] = ()
    link_bits: tuple[int, ...] = ()
    decoded: dict[int, frozenset[str]] = field(default_factory=dict)


_CACHES: dict[tuple[object, ...], _PathCache] = {}
_MAX_CACHES = 16


class Network:
    """Immutable integer view of a topology at one instant (`at`, for capacity windows)."""

    __slots__ = (
        "topology", "at", "site_ids", "index", "link_ids", "link_index", "links", "cap",
        "dir_from", "link_lat", "link_cost", "link_countries", "site_country", "_cache",
        "_entry", "_site_cost", "_masks", "site_capacity", "active", "_cap_arr",
    )

    def __init__(self, topology: Topology, at: float | None = None, k: int = 4) -> None:
        self.topology = topology
        self.at = at
        self.site_ids: tuple[str, ...] = tuple(topology.sites)
        extra = sorted({e for ln in topology.links.values() for e in (ln.a, ln.b)} - set(self.site_ids))
        self.site_ids += tuple(extra)  # endpoints without a Site record still route traffic
        self.index: dict[str, int] = {s: i for i, s in enumerate(self.site_ids)}
        self.link_ids: tuple[str, ...] = tuple(topology.links)
        self.link_index: dict[str, int] = {lid: i for i, lid in enumerate(self.link_ids)}
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
        # A site without a record (a bare link endpoint) has no known country either.
        self.site_country: tuple[str, ...] = tuple(
            country(topology.sites[s].jurisdiction) if s in topology.sites else UNKNOWN
            for s in self.site_ids)
        self.link_countries: tuple[frozenset[str], ...] = tuple(
            frozenset({country(c) for c in ln.jurisdictions}
                      | {self.site_country[self.index[ln.a]], self.site_country[self.index[ln.b]]})
            for ln in self.links)
        self._entry: dict[tuple[float, float], tuple[int, float] | None] = {}
        self._site_cost: FloatArray | None = None
        self._cap_arr: FloatArray | None = None
        self._masks: dict[object, npt.NDArray[np.bool_]] = {}
        recs = [topology.sites.get(s) for s in self.site_ids]
        # vCPU, memory, storage of each site (rows), 0 for an endpoint without a record.
        self.site_capacity = np.array([[r.vcpus, r.memory_gib, r.storage_gib] if r else
                                       [0.0, 0.0, 0.0] for r in recs]).reshape(-1, 3)
        self.active = np.array([r is not None and r.state is SiteState.ACTIVE for r in recs],
                               dtype=bool)
        key = (k, self.site_ids, self.site_country, tuple(
            (ln.link_id, ln.a, ln.b, ln.latency_ms, ln.cost_per_mbps, cs)
            for ln, cs in zip(self.links, self.link_countries)))
        cache = _CACHES.get(key)
        if cache is None:
            if len(_CACHES) >= _MAX_CACHES:
                _CACHES.pop(next(iter(_CACHES)))
            heads = [dir_from[d ^ 1] for d in range(len(dir_from))]
            lat = [self.link_lat[d >> 1] for d in range(len(dir_from))]
            graph = Graph(len(self.site_ids), dir_from, heads, lat)
            cost = np.array([self.link_cost[d >> 1] for d in range(len(dir_from))])
            names = tuple(sorted(set(self.site_country).union(*self.link_countries)))
            bit = {c: 1 << i for i, c in enumerate(names)}
            cache = _CACHES[key] = _PathCache(
                k, graph, cost, names=names,
                site_bits=tuple(bit[c] for c in self.site_country),
                link_bits=tuple(sum(bit[c] for c in cs) for cs in self.link_countries))
        self._cache = cache

    def with_capacity(self, topology: Topology, at: float | None = None) -> Network:
        """Recompile for a new topology (the path cache is reused when the structure matches)."""
        return Network(topology, at, self._cache.k)

    # ------------------------------------------------------------------------------ bounds
    def latency_to(self, dst: int, allowed: frozenset[str] = frozenset()) -> FloatArray:
        """Latency of the shortest path from every site to `dst` (inf when unreachable); with
        `allowed`, of the shortest path crossing only allowed countries (a transit rule)."""
        key = (dst, allowed)
        got = self._cache.to.get(key)
        if got is None:
            g = self._cache.graph
            if not allowed:
                got = g.distances(dst, to=True)
            else:
                w = np.where(self.transit_mask(allowed) == 1, g.weight, math.inf)
                got = g.distances(dst, to=True, weight=w, key=("transit", allowed))
            self._cache.to[key] = got
        return got

    def latency_to_with_room(self, dst: int, room: FloatArray, need: float,
                             allowed: frozenset[str] = frozenset()) -> FloatArray:
        """Latency of the shortest path from every site to `dst` over directions with at
        least `need` of `room` (and crossing only `allowed` countries when given)."""
        g = self._cache.graph
        ok = room >= need
        if allowed:
            ok &= self.transit_mask(allowed) == 1
        return g.distances(dst, to=True, weight=np.where(ok, g.weight, math.inf))

    def cut_room(self, node: int, room: FloatArray, allowed: frozenset[str] = frozenset(),
                 *, into: bool = False) -> float:
        """Room left on the directions leaving `node` (entering it, with `into`) that a
        demand under `allowed` may use: no split can carry more out of (into) a site."""
        indptr, _, arcs = self._cache.graph.R if into else self._cache.graph.G[:3]
        mine = arcs[indptr[node]:indptr[node + 1]]
        r = room[mine]
        if allowed:
            r = r[self.transit_mask(allowed)[mine] == 1]
        return float(np.maximum(r, 0.0).sum())

    def unit_bounds(self, dst: int, nw: float) -> FloatArray:
        """Lowest possible score per Mbps from every site to `dst`: Σ (cost per Mbps + nw) per
        hop over idle links. A true lower bound of any routed path's unit score (every hop's
        congestion weight is at least 1), used to order sites and to guide searches."""
        key = (dst, nw)
        got = self._cache.unit.get(key)
        if got is None:
            c = self._cache
            got = c.unit[key] = c.graph.distances(dst, to=True, weight=c.cost + nw, key=nw)
        return got

    def site_cost(self) -> FloatArray:
        """Cost per vCPU-hour of every site (0 for a link endpoint without a site record)."""
        if self._site_cost is None:
            sites = self.topology.sites
            self._site_cost = np.array([sites[s].cost_per_vcpu_hour if s in sites else 0.0
                                        for s in self.site_ids])
        return self._site_cost

    def site_mask(self, hypervisor: str = "", countries: frozenset[str] = frozenset()
                  ) -> npt.NDArray[np.bool_]:
        """Sites offering `hypervisor` (any: "") / in one of `countries` (never an unknown
        country; any: empty), cached per value."""
        key = (hypervisor, countries)
        got = self._masks.get(key)
        if got is None:
            sites = self.topology.sites
            got = np.array([
                (not hypervisor or (s in sites and hypervisor in sites[s].hypervisors))
                and (not countries or (c in countries and c != UNKNOWN))
                for s, c in zip(self.site_ids, self.site_country)], dtype=bool)
            self._masks[key] = got
        return got

    def cap_array(self) -> FloatArray:
        """`cap` as an array (read-only by convention)."""
        if self._cap_arr is None:
            self._cap_arr = np.asarray(self.cap, dtype=np.float64)
        return self._cap_arr

    def cost_array(self) -> FloatArray:
        """Cost per Mbps of every direction (read-only by convention)."""
        return self._cache.cost

    def unit_bound(self, src: int, dst: int, nw: float) -> float:
        return float(self.unit_bounds(dst, nw)[src])

    def diameter_ms(self) -> float:
        """Largest shortest-path latency between two sites that can reach each other."""
        d = self._cache.graph.distances(list(range(len(self.site_ids))))
        finite = d[np.isfinite(d)]
        return float(finite.max()) if finite.size else 0.0

    def near(self, site: int) -> tuple[int, ...]:
        """Other sites by increasing shortest-path latency from `site` (unreachable omitted)."""
        got = self._cache.near.get(site)
        if got is None:
            d = self._cache.graph.distances(site)
            order = np.lexsort((np.arange(len(d)), d))
            got = tuple(int(t) for t in order if t != site and d[t] < math.inf)
            self._cache.near[site] = got
        return got

    def transit_mask(self, allowed: frozenset[str]) -> ByteArray:
        """1 for each direction whose link crosses only `allowed` countries (never UNKNOWN)."""
        got = self._cache.masks.get(allowed)
        if got is None:
            ok = [1 if cs <= allowed and UNKNOWN not in cs else 0 for cs in self.link_countries]
            got = self._cache.masks[allowed] = np.repeat(np.array(ok, dtype=np.uint8), 2)
        return got

    # ------------------------------------------------------------------------------- paths
    def paths(self, src: int, dst: int) -> tuple[Path, ...]:
        """Candidate paths src→dst sorted by (latency, hops, dirs); cached per structure."""
        key = (src, dst)
        got = self._cache.paths.get(key)
        if got is None:
            g, k, h = self._cache.graph, self._cache.k, self.latency_to(dst)
            found: dict[tuple[int, ...], Hop] = {}
            for hop in g.k_shortest(src, dst, k, h) + g.disjoint(src, dst, k, h):
                found.setdefault(hop[1], hop)
            out = [self.make_path(*hop) for hop in found.values()]
            out.sort(key=lambda p: (p.latency_ms, len(p.dirs), p.dirs))
            got = self._cache.paths[key] = tuple(out)
        return got

    def paths_within(self, src: int, dst: int, allowed: frozenset[str]) -> tuple[Path, ...]:
        """Two link-disjoint shortest paths that cross only `allowed` countries (transit rules).

        The k candidates of `paths` may all cross a forbidden country while a compliant detour
        exists; this searches the graph pruned to allowed countries instead.
        """
        key = (src, dst, allowed)
        got = self._cache.within.get(key)
        if got is None:
            hops = self._cache.graph.disjoint(src, dst, 2, self.latency_to(dst),
                                              ok=self.transit_mask(allowed))
            got = self._cache.within[key] = tuple(self.make_path(*h) for h in hops)
        return got

    def warm(self, pairs: Sequence[tuple[int, int]] | None = None) -> None:
        """Fill the path cache for the given pairs (default: every pair, small WANs only)."""
        n = len(self.site_ids)
        todo = pairs if pairs is not None else [(s, t) for s in range(n) for t in range(n)]
        for s, t in todo:
            if s != t:
                self.paths(s, t)
        for s in sorted({s for s, _ in todo}):
            self.near(s)

    def residual_path(self, src: int, dst: int, room: Sequence[float] | FloatArray, need: float,
                      *, budget: float = math.inf, allowed: frozenset[str] = frozenset(),
                      weight: FloatArray | None = None, nw: float = 0.0,
                      ban_links: Sequence[int] = ()) -> Path | None:
        """A path src→dst on the residual network, or None when no path qualifies.

        Only directions with `room` ≥ `need`, crossing only `allowed` countries (when a
        transit rule is given) and with latency ≤ `budget` are used. The objective is
        `weight` per direction (a routing score, with `nw` the network weight, so that
        `unit_bounds` guides it) or, without it, latency — in which case a None answer proves
        that no qualifying path exists at all.
        """
        c = self._cache
        h_lat = self.latency_to(dst)
        if not (h_lat[src] < math.inf and h_lat[src] <= budget):
            return None
        room_arr = np.asarray(room, dtype=np.float64)
        ok = self.transit_mask(allowed) if allowed else None
        h = h_lat if weight is None else self.unit_bounds(dst, nw)
        hop = c.graph.search(src, dst, h, weight=weight, ok=ok, room=room_arr, need=need,
                             hl=h_lat, budget=budget, ban_links=ban_links)
        return None if hop is None else self.make_path(*hop)

    def shortest(self, src: int, dst: int, usable_dir: Sequence[bool] | None = None,
                 by_hops: bool = False) -> Path | None:
        """Shortest path by latency (or hops) over the directions marked usable (CSPF)."""
        g = self._cache.graph
        ok = None if usable_dir is None else np.asarray(usable_dir, dtype=np.uint8)
        if by_hops:
            hop = g.search(src, dst, g.zero, ok=ok, weight=np.ones(len(self.cap)))
        else:
            hop = g.search(src, dst, self.latency_to(dst), ok=ok)
        return None if hop is None else self.make_path(*hop)

    def make_path(self, nodes: tuple[int, ...], dirs: tuple[int, ...]) -> Path:
        """The `Path` over these directions. Its countries are OR-ed as bit masks (one bit per
        country) and decoded through a small cache: a WAN has few distinct country sets."""
        links = [d >> 1 for d in dirs]
        c = self._cache
        mask = c.site_bits[nodes[0]]
        for i in links:
            mask |= c.link_bits[i]
        countries = c.decoded.get(mask)
        if countries is None:
            countries = c.decoded[mask] = frozenset(
                name for b, name in enumerate(c.names) if mask >> b & 1)
        return Path(nodes, dirs, sum([self.link_lat[i] for i in links]), countries,
                    sum([self.link_cost[i] for i in links]), tuple(links))

    # ----------------------------------------------------------------------- user locations
    def entry_site(self, lat: float, lon: float) -> tuple[int, float] | None:
        """(nearest non-down site that has coordinates, its great-circle km), or None.

        A site at (0, 0) has no coordinates (the loaders never invent them), so it is never
        taken as nearest: a location on a WAN without coordinates has no entry site.
        """
        key = (lat, lon)
        if key in self._entry:
            return self._entry[key]
        best: tuple[float, str] | None = None
        for sid, s in self.topology.sites.items():
            if s.state is SiteState.DOWN or (s.latitude == 0.0 and s.longitude == 0.0):
                continue
            km = great_circle_km(lat, lon, s.latitude, s.longitude)
            if best is None or (km, sid) < best:
                best = (km, sid)
        got = None if best is None else (self.index[best[1]], best[0])
        self._entry[key] = got
        return got
