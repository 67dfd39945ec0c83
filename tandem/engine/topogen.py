"""Seeded synthetic WANs of any size, for benchmarks at the scale of a 1,000-site federation.

The reference files stop at ~150 sites; decisions "in milliseconds on 1,000-site WANs" need
something larger that still looks like a WAN to the engine: sites clustered around real
metros on every continent (so latencies, countries and residency rules mean something), a
sparse mesh (average degree ~3, like Topology Zoo backbones) and no single cable whose loss
cuts the network in two (so 1+1 diverse demands are satisfiable between any two sites).

Construction (`generate_topology`), every random draw from one `numpy.random.default_rng(seed)`:
1. sites: a metro drawn by weight from `METROS`, then a Gaussian offset of `spread_deg`
   (longitude scaled by 1/cos(latitude)), coordinates rounded to 1e-4 degree (~11 m); the
   site's country is its metro's. `unknown_countries` sites, drawn at random, get none.
2. Waxman links: a third of the link budget `round(avg_degree * n / 2)`, pairs drawn without
   replacement with probability ∝ exp(-d / (alpha * L)), L the largest distance
   (Efraimidis-Spirakis keys), so most links are short and a few are long.
3. connection: the edges of the minimum spanning tree (great-circle length), shortest first,
   that join two components, so the long-haul trunks between metros are the shortest ones,
   as real cables are.
4. bridge repair (`two_edge_connected`): while a bridge exists, take the one whose smaller
   side is smallest and add the shortest other link across it (leaves first: a leaf gets a
   link to its nearest non-neighbour).
5. Waxman fill: more Waxman pairs up to the link budget (none when 3-4 went past it).
6. capacity per link (the same both ways, as GraphML carries it): 1, 10 or 100 Gbps by the
   weights of `CAPACITY_MIX`, long-haul links (≥ `LONG_HAUL_KM`) by `LONG_HAUL_MIX`.

Sites and links are built by the loaders' own `make_site`/`make_link`, so compute defaults,
latency (great circle at 200 km/ms) and link countries are exactly what
`load_topology` derives when it reads the written file back (see docs/TOPOLOGY.md).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .loaders.common import make_link, make_site
from .topology import Link, Site, Topology

# (city, ISO 3166-1 alpha-2, latitude, longitude, weight): datacenter metros on six
# continents; the weight is roughly the metro's share of a global provider's sites.
METROS: tuple[tuple[str, str, float, float, float], ...] = (
    ("Ashburn", "US", 39.04, -77.49, 5), ("New York", "US", 40.71, -74.01, 4),
    ("Chicago", "US", 41.88, -87.63, 3), ("Dallas", "US", 32.78, -96.80, 3),
    ("Atlanta", "US", 33.75, -84.39, 2), ("Denver", "US", 39.74, -104.99, 1),
    ("Seattle", "US", 47.61, -122.33, 2), ("San Jose", "US", 37.34, -121.89, 4),
    ("Los Angeles", "US", 34.05, -118.24, 3), ("Miami", "US", 25.76, -80.19, 2),
    ("Toronto", "CA", 43.65, -79.38, 2), ("Montreal", "CA", 45.50, -73.57, 1),
    ("Vancouver", "CA", 49.28, -123.12, 1), ("Mexico City", "MX", 19.43, -99.13, 1),
    ("Sao Paulo", "BR", -23.55, -46.63, 2), ("Rio de Janeiro", "BR", -22.91, -43.17, 1),
    ("Buenos Aires", "AR", -34.60, -58.38, 1), ("Santiago", "CL", -33.45, -70.67, 1),
    ("Bogota", "CO", 4.71, -74.07, 1), ("Lima", "PE", -12.05, -77.04, 1),
    ("London", "GB", 51.51, -0.13, 4), ("Manchester", "GB", 53.48, -2.24, 1),
    ("Dublin", "IE", 53.35, -6.26, 2), ("Paris", "FR", 48.86, 2.35, 3),
    ("Marseille", "FR", 43.30, 5.37, 1), ("Frankfurt", "DE", 50.11, 8.68, 4),
    ("Berlin", "DE", 52.52, 13.40, 1), ("Munich", "DE", 48.14, 11.58, 1),
    ("Amsterdam", "NL", 52.37, 4.90, 3), ("Brussels", "BE", 50.85, 4.35, 1),
    ("Zurich", "CH", 47.38, 8.54, 1), ("Geneva", "CH", 46.20, 6.14, 1),
    ("Milan", "IT", 45.46, 9.19, 1), ("Madrid", "ES", 40.42, -3.70, 1),
    ("Lisbon", "PT", 38.72, -9.14, 1), ("Stockholm", "SE", 59.33, 18.07, 1),
    ("Oslo", "NO", 59.91, 10.75, 1), ("Copenhagen", "DK", 55.68, 12.57, 1),
    ("Helsinki", "FI", 60.17, 24.94, 1), ("Warsaw", "PL", 52.23, 21.01, 1),
    ("Vienna", "AT", 48.21, 16.37, 1), ("Prague", "CZ", 50.08, 14.44, 1),
    ("Athens", "GR", 37.98, 23.73, 1), ("Istanbul", "TR", 41.01, 28.98, 1),
    ("Tel Aviv", "IL", 32.09, 34.78, 1), ("Dubai", "AE", 25.20, 55.27, 1),
    ("Riyadh", "SA", 24.71, 46.68, 1), ("Johannesburg", "ZA", -26.20, 28.05, 1),
    ("Cape Town", "ZA", -33.92, 18.42, 1), ("Lagos", "NG", 6.52, 3.38, 1),
    ("Nairobi", "KE", -1.29, 36.82, 1), ("Cairo", "EG", 30.04, 31.24, 1),
    ("Mumbai", "IN", 19.08, 72.88, 2), ("Chennai", "IN", 13.08, 80.27, 1),
    ("Delhi", "IN", 28.61, 77.21, 1), ("Singapore", "SG", 1.35, 103.82, 3),
    ("Jakarta", "ID", -6.21, 106.85, 1), ("Hong Kong", "HK", 22.32, 114.17, 2),
    ("Tokyo", "JP", 35.68, 139.69, 3), ("Osaka", "JP", 34.69, 135.50, 1),
    ("Seoul", "KR", 37.57, 126.98, 2), ("Taipei", "TW", 25.03, 121.57, 1),
    ("Sydney", "AU", -33.87, 151.21, 2), ("Melbourne", "AU", -37.81, 144.96, 1),
    ("Perth", "AU", -31.95, 115.86, 1), ("Auckland", "NZ", -36.85, 174.76, 1),
)
# (Mbps, weight): the mix of line rates on regional links and on long-haul ones.
CAPACITY_MIX: tuple[tuple[float, float], ...] = ((1_000.0, 0.3), (10_000.0, 0.5), (100_000.0, 0.2))
LONG_HAUL_MIX: tuple[tuple[float, float], ...] = ((10_000.0, 0.6), (100_000.0, 0.4))
LONG_HAUL_KM = 1_000.0
# The country of a site with no known country: what the loaders give such a node (see
# docs/TOPOLOGY.md, "unknown is never treated as allowed").
UNKNOWN_COUNTRY = ""
_EARTH_KM = 6371.0088


def generate_topology(
    n: int,
    seed: int,
    *,
    avg_degree: float = 3.0,
    alpha: float = 0.05,
    spread_deg: float = 1.0,
    unknown_countries: int = 0,
    two_edge_connected: bool = True,
) -> Topology:
    """A connected WAN of `n` sites; identical for identical arguments (see module doc)."""
    if n < 2:
        raise ValueError("a WAN needs at least 2 sites")
    if not 0 <= unknown_countries <= n:
        raise ValueError(f"unknown_countries must be in [0, {n}]")
    rng = np.random.default_rng(seed)
    lat, lon, metro = _place_sites(rng, n, spread_deg)
    dist = _distances(lat, lon)
    budget = round(avg_degree * n / 2)
    edges: set[tuple[int, int]] = set()
    _waxman_fill(rng, dist, edges, budget // 3, alpha)
    _connect(dist, edges)
    if two_edge_connected and n >= 3:
        _repair_bridges(dist, edges, n)
    _waxman_fill(rng, dist, edges, budget - len(edges), alpha)
    unknown = set(rng.choice(n, size=unknown_countries, replace=False).tolist())

    sites: dict[str, Site] = {}
    coords: dict[str, tuple[float, float]] = {}
    per_metro: dict[int, int] = {}
    for i in range(n):
        city, country = METROS[metro[i]][0], METROS[metro[i]][1]
        per_metro[metro[i]] = per_metro.get(metro[i], 0) + 1
        sid = f"n{i}"
        coords[sid] = (float(lat[i]), float(lon[i]))
        sites[sid] = make_site(sid, f"{city} {per_metro[metro[i]]}", coords[sid],
                               UNKNOWN_COUNTRY if i in unknown else country)
    links: dict[str, Link] = {}
    caps = _capacities(rng, [float(dist[a, b]) for a, b in sorted(edges)])
    for k, ((a, b), cap) in enumerate(zip(sorted(edges), caps)):
        lid = f"e{k}"
        links[lid] = make_link(lid, sites[f"n{a}"], sites[f"n{b}"], coords, cap, cap)
    return Topology(sites, links, f"waxman-{n}-seed{seed}")


def _place_sites(
    rng: np.random.Generator, n: int, spread_deg: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], list[int]]:
    weights = np.array([m[4] for m in METROS], dtype=float)
    metro = rng.choice(len(METROS), size=n, p=weights / weights.sum())
    base_lat = np.array([METROS[m][2] for m in metro])
    base_lon = np.array([METROS[m][3] for m in metro])
    dlat, dlon = rng.normal(0.0, spread_deg, size=(2, n))
    lat = np.clip(base_lat + dlat, -89.0, 89.0)
    lon = base_lon + dlon / np.cos(np.radians(base_lat))
    lon = (lon + 180.0) % 360.0 - 180.0
    return np.round(lat, 4), np.round(lon, 4), [int(m) for m in metro]


def _distances(lat: npt.NDArray[np.float64], lon: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """All-pairs haversine distance in km (numpy; only used to choose links, not latencies)."""
    p, q = np.radians(lat), np.radians(lon)
    dp = p[:, None] - p[None, :]
    dq = q[:, None] - q[None, :]
    h = np.sin(dp / 2) ** 2 + np.cos(p)[:, None] * np.cos(p)[None, :] * np.sin(dq / 2) ** 2
    d: npt.NDArray[np.float64] = 2 * _EARTH_KM * np.arcsin(np.sqrt(np.minimum(h, 1.0)))
    return d


def _spanning_tree(dist: npt.NDArray[np.float64]) -> set[tuple[int, int]]:
    """Prim's minimum spanning tree, O(n²) on the dense matrix; ties go to the lower index."""
    n = dist.shape[0]
    in_tree = np.zeros(n, dtype=bool)
    in_tree[0] = True
    best = dist[0].copy()
    parent = np.zeros(n, dtype=np.int64)
    edges: set[tuple[int, int]] = set()
    for _ in range(n - 1):
        cand = np.where(in_tree, np.inf, best)
        v = int(np.argmin(cand))
        u = int(parent[v])
        edges.add((min(u, v), max(u, v)))
        in_tree[v] = True
        closer = dist[v] < best
        best = np.where(closer, dist[v], best)
        parent = np.where(closer, v, parent)
    return edges


def _connect(dist: npt.NDArray[np.float64], edges: set[tuple[int, int]]) -> None:
    """Join the components with spanning-tree edges, shortest first (Kruskal on the MST).

    The cheapest way to connect components uses only edges of the complete graph's minimum
    spanning tree (cycle property), so scanning those in length order suffices.
    """
    n = dist.shape[0]
    root = list(range(n))

    def find(x: int) -> int:
        while root[x] != x:
            root[x] = root[root[x]]
            x = root[x]
        return x

    for a, b in sorted(edges):
        root[find(a)] = find(b)
    for a, b in sorted(_spanning_tree(dist), key=lambda e: (float(dist[e]), e)):
        ra, rb = find(a), find(b)
        if ra != rb:
            root[ra] = rb
            edges.add((a, b))


def bridges(n: int, edges: set[tuple[int, int]]) -> list[tuple[int, int, list[int]]]:
    """Bridges of a connected graph as (u, v, side): `side` = the sites cut off with v.

    Iterative Tarjan DFS from site 0; a DFS subtree is a contiguous run of the preorder, so
    the side cut off by a tree edge u→v is `order[pre[v] : pre[v] + size[v]]`.
    """
    adj: list[list[int]] = [[] for _ in range(n)]
    for a, b in sorted(edges):
        adj[a].append(b)
        adj[b].append(a)
    pre = [-1] * n
    low = [0] * n
    size = [1] * n
    order: list[int] = []
    parent = [-1] * n
    out: list[tuple[int, int, list[int]]] = []
    pre[0] = low[0] = 0
    order.append(0)
    stack: list[tuple[int, int]] = [(0, 0)]
    while stack:
        v, i = stack[-1]
        if i < len(adj[v]):
            stack[-1] = (v, i + 1)
            w = adj[v][i]
            if pre[w] < 0:
                parent[w] = v
                pre[w] = low[w] = len(order)
                order.append(w)
                stack.append((w, 0))
            elif w != parent[v]:
                low[v] = min(low[v], pre[w])
            continue
        stack.pop()
        u = parent[v]
        if u >= 0:
            low[u] = min(low[u], low[v])
            size[u] += size[v]
            if low[v] > pre[u]:
                out.append((u, v, []))
    return [(u, v, order[pre[v]:pre[v] + size[v]]) for u, v, _ in out]


def _repair_bridges(dist: npt.NDArray[np.float64], edges: set[tuple[int, int]], n: int) -> None:
    """Add the shortest other link across the bridge with the smallest side until none is left."""
    while True:
        found = bridges(n, edges)
        if not found:
            return
        u, v, side = min(found, key=lambda b: (min(len(b[2]), n - len(b[2])), min(b[0], b[1]),
                                               max(b[0], b[1])))
        inside = np.zeros(n, dtype=bool)
        inside[side] = True
        s_idx = np.flatnonzero(inside)
        t_idx = np.flatnonzero(~inside)
        cross = dist[np.ix_(s_idx, t_idx)].copy()
        # The bridge is the only link across the cut: every other pair is a new link.
        cross[np.flatnonzero(s_idx == v)[0], np.flatnonzero(t_idx == u)[0]] = np.inf
        k = int(np.argmin(cross))
        a, b = int(s_idx[k // len(t_idx)]), int(t_idx[k % len(t_idx)])
        edges.add((min(a, b), max(a, b)))


def _waxman_fill(
    rng: np.random.Generator, dist: npt.NDArray[np.float64], edges: set[tuple[int, int]],
    extra: int, alpha: float,
) -> None:
    """Add `extra` new links, pairs drawn ∝ exp(-d/(alpha·L)) without replacement."""
    n = dist.shape[0]
    iu, ju = np.triu_indices(n, k=1)
    d = dist[iu, ju]
    scale = alpha * max(float(d.max()), 1e-9)
    # Efraimidis-Spirakis: the `extra` smallest -log(U)/w are a weighted sample without
    # replacement; with w = exp(-d/scale) that is -log(U)·exp(d/scale) (no underflow of w).
    keys = -np.log(rng.random(d.shape[0])) * np.exp(np.minimum(d / scale, 700.0))
    for k in np.argsort(keys, kind="stable"):
        if extra <= 0:
            return
        pair = (int(iu[k]), int(ju[k]))
        if pair not in edges:
            edges.add(pair)
            extra -= 1


def _capacities(rng: np.random.Generator, lengths_km: list[float]) -> list[float]:
    draws = rng.random(len(lengths_km))
    out: list[float] = []
    for km, u in zip(lengths_km, draws):
        mix = LONG_HAUL_MIX if km >= LONG_HAUL_KM else CAPACITY_MIX
        total = sum(w for _, w in mix)
        acc = 0.0
        for cap, w in mix:
            acc += w / total
            if u < acc:
                out.append(cap)
                break
        else:
            out.append(mix[-1][0])
    return out


def stats(topology: Topology) -> dict[str, float]:
    """Figures that say whether a topology looks like a WAN (printed by the CLI, tested)."""
    n, m = len(topology.sites), len(topology.links)
    countries = {s.jurisdiction for s in topology.sites.values() if s.jurisdiction}
    lat = [ln.latency_ms for ln in topology.links.values()]
    return {
        "sites": n, "links": m, "avg_degree": 2 * m / n if n else 0.0,
        "countries": len(countries),
        "unknown_country_sites": sum(1 for s in topology.sites.values() if not s.jurisdiction),
        "median_link_latency_ms": float(np.median(lat)) if lat else 0.0,
        "max_link_latency_ms": max(lat, default=0.0),
        "gbps_1": sum(1 for ln in topology.links.values() if ln.capacity_ab_mbps == 1_000.0),
        "gbps_10": sum(1 for ln in topology.links.values() if ln.capacity_ab_mbps == 10_000.0),
        "gbps_100": sum(1 for ln in topology.links.values() if ln.capacity_ab_mbps == 100_000.0),
        "is_connected": float(_connected(topology)),
    }


def _connected(topology: Topology) -> bool:
    ids = list(topology.sites)
    if not ids:
        return True
    adj: dict[str, list[str]] = {s: [] for s in ids}
    for ln in topology.links.values():
        adj[ln.a].append(ln.b)
        adj[ln.b].append(ln.a)
    seen = {ids[0]}
    todo = [ids[0]]
    while todo:
        for w in adj[todo.pop()]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return len(seen) == len(ids)


__all__ = ["generate_topology", "bridges", "stats", "METROS", "UNKNOWN_COUNTRY"]
