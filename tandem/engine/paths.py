"""The one path search of Tandem: shortest, constrained, k-shortest and link-disjoint paths.

Every path in the engine comes from here: the joint engine's candidate paths and its search on
the residual network (`network.py`, `routing.py`), the baselines' CSPF, the TE benchmark's path
sets (`mcf.py`, `bench/te.py`) and the SDN reroute benchmark. Why one compiled kernel:

- A 1,000-site WAN has ~10^6 ordered site pairs. A decision must touch only the few pairs it
  needs, and each must cost microseconds; the TE benchmark needs 4 link-disjoint paths for
  *every* pair in seconds. Plain Dijkstra explores half the graph per query, so the kernel is
  A* guided by an exact lower bound: the distance to the target in the full graph, from one
  compiled single-source Dijkstra (`scipy.sparse.csgraph`) per target. Removing links or
  directions (Yen's spurs, disjoint paths, full links on the residual network) only lengthens
  distances, so the bound stays admissible and a search touches little more than its answer.
- The kernel is compiled with numba when it is installed (the same source runs interpreted
  otherwise, slower but identical). A search takes integer arrays, so a caller pays no
  per-query graph construction.

Conventions: nodes are integers; arc `2*i` is link i from its `a` end, `2*i+1` from its `b`
end (so `arc >> 1` is the link). Objective ties are broken by fewer hops, then by the node
settled first in (objective + bound, hops, node id) order, scanning a node's arcs by (neighbour,
arc): results depend only on the graph. A search may also be bounded by a second resource
(latency): a label is pruned when its latency plus the latency bound to the target exceeds the
budget. Disjoint paths are link-disjoint, found greedily as the TE literature does (shortest,
remove its links, repeat), which may find fewer than the maximum on trap topologies.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix  # type: ignore[import-untyped]
from scipy.sparse.csgraph import dijkstra as _sp_dijkstra  # type: ignore[import-untyped]

_JIT: Callable[..., Any] | None
try:  # the compiler is optional: the kernels below are plain Python too
    import numba  # type: ignore[import-not-found, unused-ignore]

    _JIT = numba.njit
except ImportError:  # pragma: no cover - exercised only where numba is missing
    _JIT = None

from .topology import Topology

Weight = Literal["latency", "hops"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ByteArray = npt.NDArray[np.uint8]
_F = TypeVar("_F", bound=Callable[..., Any])
INF = float("inf")
# Reverse breadth-first check before each disjoint search: a target cut off behind a small
# set of nodes is recognised after visiting at most this many, instead of exhausting the
# (large) source side of the graph.
_CUT_PROBE = 64
# Pops of a search before it checks that its target is reachable at all (see `_astar`).
_PROBE_AT = 128
# Candidate tuple of a search: (node sequence, arc sequence).
Hop = tuple[tuple[int, ...], tuple[int, ...]]


def _compiled(fn: _F) -> _F:
    return fn if _JIT is None else cast(_F, _JIT(cache=False, nogil=True)(fn))


# The graph is passed to the kernels as G = (indptr, nbr, arcs, tails, heads): the forward
# adjacency sorted by (node, neighbour, arc), and each arc's ends; the work arrays as W = (link_ban,
# node_ban, arc_ban, dist, glat, hops, prev, mark, heap key, heap hops, heap node, heap g,
# seen, queue).
# A ban array entry equal to the search's stamp bans that link/node/arc; `mark[v] == ms` says
# v's labels belong to this search: no array is ever cleared between searches.


@_compiled
def _sift_down(key: FloatArray, hop: IntArray, node: IntArray, g: FloatArray, size: int,
               i: int) -> None:
    while True:
        c = 2 * i + 1
        if c >= size:
            return
        if c + 1 < size and (key[c + 1], hop[c + 1], node[c + 1]) < (key[c], hop[c], node[c]):
            c += 1
        if (key[c], hop[c], node[c]) >= (key[i], hop[i], node[i]):
            return
        key[i], key[c] = key[c], key[i]
        hop[i], hop[c] = hop[c], hop[i]
        node[i], node[c] = node[c], node[i]
        g[i], g[c] = g[c], g[i]
        i = c


@_compiled
def _astar(G: Any, W: Any, wt: FloatArray, lat: FloatArray, s: int, t: int, h: FloatArray,
           hl: FloatArray, budget: float, stamp: int, ms: int, ok: ByteArray, room: FloatArray,
           need: float) -> bool:
    """A* from s to t; True when t is reached (`prev[v]`: adjacency entry reaching v).

    The heap holds (objective + bound, hops, node, objective); when full, its stale entries
    are dropped (live ones are at most one per node). After `_PROBE_AT` pops a plain
    breadth-first check asks whether t is reachable at all: a search that must fail (a
    disjoint path behind a cut) then stops at a fraction of the cost of exhausting the graph.
    """
    indptr, nbr, arcs = G[0], G[1], G[2]
    link_ban, node_ban, arc_ban, dist, glat, hops, prev, mark, hk, hh, hn, hg = W[:12]
    pops = 0
    mark[s] = ms
    dist[s], glat[s], hops[s], prev[s] = 0.0, 0.0, 0, -1
    hk[0], hh[0], hn[0], hg[0] = h[s], 0, s, 0.0
    size, cap = 1, hk.shape[0]
    while size > 0:
        hp, u, g = hh[0], hn[0], hg[0]
        size -= 1
        hk[0], hh[0], hn[0], hg[0] = hk[size], hh[size], hn[size], hg[size]
        _sift_down(hk, hh, hn, hg, size, 0)
        if g != dist[u] or hp != hops[u]:
            continue  # stale: u was improved since
        if u == t:
            return True
        pops += 1
        if pops == _PROBE_AT and not _reach(G, W, s, t, stamp, ms, ok, room, need):
            return False
        for j in range(indptr[u], indptr[u + 1]):
            a, v = arcs[j], nbr[j]
            if (link_ban[a >> 1] == stamp or node_ban[v] == stamp or arc_ban[a] == stamp
                    or ok[a] == 0 or room[a] < need):
                continue
            nl = glat[u] + lat[a]
            if nl + hl[v] > budget:
                continue
            nd = g + wt[a]
            if mark[v] == ms and (nd > dist[v] or (nd == dist[v] and hp + 1 >= hops[v])):
                continue
            mark[v] = ms
            dist[v], glat[v], hops[v], prev[v] = nd, nl, hp + 1, j
            if size == cap:
                live = 0
                for i in range(size):
                    x = hn[i]
                    if mark[x] == ms and hg[i] == dist[x] and hh[i] == hops[x]:
                        hk[live], hh[live], hn[live], hg[live] = hk[i], hh[i], hn[i], hg[i]
                        live += 1
                size = live
                for i in range(size // 2 - 1, -1, -1):
                    _sift_down(hk, hh, hn, hg, size, i)
            i, f = size, nd + h[v]
            size += 1
            while i > 0:  # sift up
                q = (i - 1) // 2
                if (hk[q], hh[q], hn[q]) <= (f, hp + 1, v):
                    break
                hk[i], hh[i], hn[i], hg[i] = hk[q], hh[q], hn[q], hg[q]
                i = q
            hk[i], hh[i], hn[i], hg[i] = f, hp + 1, v, nd
    return False


@_compiled
def _reach(G: Any, W: Any, s: int, t: int, stamp: int, ms: int, ok: ByteArray,
           room: FloatArray, need: float) -> bool:
    """Breadth-first: can s reach t over the arcs the search may use (latency aside)?"""
    indptr, nbr, arcs = G[0], G[1], G[2]
    link_ban, node_ban, arc_ban, seen, queue = W[0], W[1], W[2], W[12], W[13]
    seen[s] = ms
    queue[0] = s
    head, tail = 0, 1
    while head < tail:
        u = queue[head]
        head += 1
        for j in range(indptr[u], indptr[u + 1]):
            a, v = arcs[j], nbr[j]
            if (seen[v] == ms or link_ban[a >> 1] == stamp or node_ban[v] == stamp
                    or arc_ban[a] == stamp or ok[a] == 0 or room[a] < need):
                continue
            if v == t:
                return True
            seen[v] = ms
            queue[tail] = v
            tail += 1
    return False


@_compiled
def _walk(G: Any, W: Any, s: int, t: int) -> IntArray:
    """The arcs of the path the last search found from s to t."""
    arcs, tails = G[2], G[3]
    prev, m = W[6], W[5][t]
    out = np.empty(m, np.int64)
    v = t
    for i in range(m - 1, -1, -1):
        out[i] = arcs[prev[v]]
        v = tails[out[i]]
    return out


@_compiled
def _cut_off(R: Any, start: int, goal: int, link_ban: IntArray, stamp: int, seen: IntArray,
             mark: int, queue: IntArray) -> bool:
    """True when `start` provably cannot reach `goal`: a breadth-first probe over unbanned
    links closes before `queue` fills (a small cut-off side is recognised at once, instead of
    exhausting the large other side of the graph)."""
    indptr, nbr, arcs = R[0], R[1], R[2]
    seen[start] = mark
    queue[0] = start
    head, tail = 0, 1
    while head < tail:
        u = queue[head]
        head += 1
        for j in range(indptr[u], indptr[u + 1]):
            v = nbr[j]
            if link_ban[arcs[j] >> 1] == stamp or seen[v] == mark:
                continue
            if v == goal or tail >= queue.shape[0]:
                return False
            seen[v] = mark
            queue[tail] = v
            tail += 1
    return True


@_compiled
def _disjoint(G: Any, R: Any, W: Any, wt: FloatArray, bounds: FloatArray, s: int,
              targets: IntArray, k: int, bridge: ByteArray, stamp0: int, ok: ByteArray,
              room: FloatArray, zero: FloatArray, pre_links: IntArray, pre_nodes: IntArray,
              seen: IntArray, queue: IntArray, out: IntArray, count: IntArray) -> Any:
    """Greedy link-disjoint paths from s to each target (`bounds[i]`: distances to
    targets[i]). Arcs of each path go to `out`, followed by -1; `count[i]` paths for target
    i. Returns (used length of `out`, -1 when too small; last stamp used)."""
    link_ban, node_ban = W[0], W[1]
    pos, c = 0, stamp0
    for ti in range(targets.shape[0]):
        t = targets[ti]
        count[ti] = 0
        if t == s:
            continue
        c += 1
        stamp = c  # this target's banned links and nodes
        for x in pre_links:
            link_ban[x] = stamp
        for x in pre_nodes:
            node_ban[x] = stamp
        crosses_bridge = False
        for kk in range(k):
            if kk == 1 and crosses_bridge:  # no second path: the first crossed a bridge
                break
            if kk > 1:  # a third path is more often impossible than not: prove it cheaply,
                c += 3  # by a small cut-off side at either end, else by a plain traversal
                if (_cut_off(G, s, t, link_ban, stamp, seen, c - 2, queue)
                        or _cut_off(R, t, s, link_ban, stamp, seen, c - 1, queue)
                        or not _reach(G, W, s, t, stamp, c, ok, room, 0.0)):
                    break
            c += 1
            if not _astar(G, W, wt, wt, s, t, bounds[ti], zero, INF, stamp, c, ok, room, 0.0):
                break
            path = _walk(G, W, s, t)
            m = path.shape[0]
            if pos + m + 1 > out.shape[0]:
                return -1, c
            for i in range(m):
                out[pos + i] = path[i]
                link_ban[path[i] >> 1] = stamp
                if bridge[path[i] >> 1] != 0:
                    crosses_bridge = True
            out[pos + m] = -1
            pos += m + 1
            count[ti] += 1
    return pos, c


@_compiled
def _yen(G: Any, W: Any, wt: FloatArray, h: FloatArray, zero: FloatArray, ok: ByteArray,
         room: FloatArray, s: int, t: int, k: int, stamp0: int) -> Any:
    """Yen's k shortest loopless paths s→t as arc arrays; candidates tie on (cost, hops,
    order found). Lawler's refinement: a path's spurs start where it left its parent (the
    spurs before that were searched with the parent, under the same bans). Returns (paths,
    last stamp used)."""
    node_ban, arc_ban = W[1], W[2]
    c = stamp0 + 1
    acc = [np.empty(0, np.int64)]
    acc.pop()
    if not _astar(G, W, wt, wt, s, t, h, zero, INF, c, c, ok, room, 0.0):
        return acc, c
    acc.append(_walk(G, W, s, t))
    cands = [np.empty(0, np.int64)]
    cands.pop()
    heap = [(0.0, 0, 0, 0)]  # (cost, hops, candidate index, where it left its parent)
    heap.pop()
    dev = 0
    while len(acc) < k:
        last = acc[-1]
        m = last.shape[0]
        for i in range(dev, m):
            c += 1
            v = s
            for j in range(i):  # the root path's nodes before the spur node
                node_ban[v] = c
                v = G[4][last[j]]
            for p in acc:
                if p.shape[0] > i and np.array_equal(p[:i], last[:i]):
                    arc_ban[p[i]] = c
            if not _astar(G, W, wt, wt, v, t, h, zero, INF, c, c, ok, room, 0.0):
                continue
            tot = np.concatenate((last[:i], _walk(G, W, v, t)))
            if _known(tot, acc) or _known(tot, cands):
                continue
            cands.append(tot)
            w = 0.0
            for a in tot:
                w += wt[a]
            heapq.heappush(heap, (w, tot.shape[0], len(cands) - 1, i))
        if len(heap) == 0:
            break
        _, _, best, dev = heapq.heappop(heap)
        acc.append(cands[best])
    return acc, c


@_compiled
def _known(p: IntArray, paths: Any) -> bool:
    for q in paths:
        if q.shape[0] == p.shape[0] and np.array_equal(q, p):
            return True
    return False


class Graph:
    """A directed graph over integer nodes, compiled for the kernels (build once, query often).

    `tails`/`heads`/`weight` are indexed by arc id (arcs come in pairs: `a ^ 1` is the
    reverse of `a`); arcs absent from `present` do not exist (a dead or zero-capacity
    direction). `latency` is the resource a search may bound (the weight when omitted).
    Not thread-safe: searches share work arrays.
    """

    def __init__(self, n: int, tails: Sequence[int], heads: Sequence[int],
                 weight: Sequence[float], present: Sequence[bool] | None = None,
                 latency: Sequence[float] | None = None) -> None:
        self.n = n
        self.tails = np.asarray(tails, dtype=np.int64)
        self.heads = np.asarray(heads, dtype=np.int64)
        self._heads: list[int] = self.heads.tolist()
        self.weight = np.asarray(weight, dtype=np.float64)
        self.latency = self.weight if latency is None else np.asarray(latency, dtype=np.float64)
        m = len(self.tails)
        keep = np.ones(m, dtype=bool) if present is None else np.asarray(present, dtype=bool)
        ids = np.nonzero(keep)[0].astype(np.int64)
        self._present = ids
        fwd, rev = self._csr(self.tails, self.heads, ids), self._csr(self.heads, self.tails, ids)
        self.G = fwd + (self.tails, self.heads)
        self.R = rev
        self.stamp = 0
        cap = n + len(ids) + 1
        i64, f64 = np.int64, np.float64
        self.W = (np.zeros(m // 2 + 1, i64), np.zeros(n, i64), np.zeros(m, i64), np.zeros(n, f64),
                  np.zeros(n, f64), np.zeros(n, i64), np.zeros(n, i64), np.zeros(n, i64),
                  np.zeros(cap, f64), np.zeros(cap, i64), np.zeros(cap, i64), np.zeros(cap, f64),
                  np.zeros(n, i64), np.zeros(n + 1, i64))
        self.all_ok = np.ones(m, dtype=np.uint8)
        self.no_room = np.full(m, INF)
        self.zero = np.zeros(n)
        self._none = np.zeros(0, dtype=np.int64)
        self._nobridge = np.zeros(m // 2 + 1, dtype=np.uint8)
        self._probe = np.zeros(_CUT_PROBE, dtype=np.int64)
        self._out = np.zeros(1024, dtype=np.int64)
        self._sparse: dict[tuple[bool, object], Any] = {}

    def _csr(self, tails: IntArray, heads: IntArray, ids: IntArray) -> tuple[IntArray, ...]:
        u, v = tails[ids], heads[ids]
        order = np.lexsort((ids, v, u))
        indptr = np.zeros(self.n + 1, dtype=np.int64)
        np.add.at(indptr, u + 1, 1)
        return np.cumsum(indptr), v[order].copy(), ids[order].copy()

    # ------------------------------------------------------------------- exact bounds (scipy)
    def distances(self, sources: int | Sequence[int], *, to: bool = False,
                  weight: FloatArray | None = None, key: object = None) -> FloatArray:
        """Shortest distances from `sources` (with `to`: from every node *to* them), by the
        graph's weight or by `weight` per arc (its sparse matrix cached under `key`)."""
        mkey = (to, key if weight is not None else None)
        mat = self._sparse.get(mkey) if weight is None or key is not None else None
        if mat is None:
            ids = self._present
            a, b = (self.heads, self.tails) if to else (self.tails, self.heads)
            u, v = a[ids], b[ids]
            w = (self.weight if weight is None else weight)[ids]
            order = np.lexsort((w, v, u))  # parallel arcs: keep the lightest
            u, v, w = u[order], v[order], w[order]
            first = np.ones(len(u), dtype=bool)
            first[1:] = (u[1:] != u[:-1]) | (v[1:] != v[:-1])
            mat = csr_matrix((w[first], (u[first], v[first])), shape=(self.n, self.n))
            if weight is None or key is not None:
                self._sparse[mkey] = mat
        return np.asarray(_sp_dijkstra(mat, directed=True, indices=sources), dtype=np.float64)

    # ---------------------------------------------------------------------------- searches
    def _hop(self, s: int, arcs: IntArray) -> Hop:
        a = arcs.tolist()
        heads = self._heads
        return (s,) + tuple([heads[x] for x in a]), tuple(a)

    def search(self, s: int, t: int, h: FloatArray, *, ban_links: Iterable[int] = (),
               ban_nodes: Iterable[int] = (), ban_arcs: Iterable[int] = (),
               weight: FloatArray | None = None, ok: ByteArray | None = None,
               room: FloatArray | None = None, need: float = 0.0,
               hl: FloatArray | None = None, budget: float = INF) -> Hop | None:
        """Best s→t path as (nodes, arcs), or None; `h` must bound the remaining objective.

        `ok` masks arcs out (a transit rule), `room`/`need` drop arcs with less room than
        needed, `budget` bounds the latency (`hl`: a latency bound to t).
        """
        if s == t:
            return None
        self.stamp += 1
        st = self.stamp
        for arr, items in zip(self.W[:3], (ban_links, ban_nodes, ban_arcs)):
            for x in items:
                arr[x] = st
        if not _astar(self.G, self.W, self.weight if weight is None else weight, self.latency,
                      s, t, h, self.zero if hl is None else hl, budget, st, st,
                      self.all_ok if ok is None else ok,
                      self.no_room if room is None else room, need):
            return None
        return self._hop(s, _walk(self.G, self.W, s, t))

    def k_shortest(self, s: int, t: int, k: int, h: FloatArray) -> list[Hop]:
        """Up to k loopless shortest paths in order (Yen's algorithm)."""
        if s == t or k <= 0:
            return []
        paths, self.stamp = _yen(self.G, self.W, self.weight, h, self.zero, self.all_ok,
                                 self.no_room, s, t, k, self.stamp)
        return [self._hop(s, p) for p in paths]

    def disjoint(self, s: int, t: int, k: int, h: FloatArray, *, ok: ByteArray | None = None,
                 ban_links: Iterable[int] = (), ban_nodes: Iterable[int] = ()) -> list[Hop]:
        """Up to k link-disjoint paths, shortest first (greedy removal, see module doc)."""
        if s == t:
            return []
        flat, _ = self._sweep(s, np.array([t], dtype=np.int64), h.reshape(1, -1), k, ok,
                              np.fromiter(ban_links, dtype=np.int64),
                              np.fromiter(ban_nodes, dtype=np.int64), self._nobridge)
        ends = np.flatnonzero(flat == -1).tolist()
        return [self._hop(s, flat[a + 1:b]) for a, b in zip([-1] + ends, ends)]

    def _sweep(self, s: int, targets: IntArray, bounds: FloatArray, k: int,
               ok: ByteArray | None, pre_links: IntArray, pre_nodes: IntArray,
               bridge: ByteArray) -> tuple[IntArray, IntArray]:
        """`_disjoint` from s: (arcs of the paths, each followed by -1; paths per target)."""
        count = np.zeros(len(targets), dtype=np.int64)
        while True:
            used, self.stamp = _disjoint(self.G, self.R, self.W, self.weight, bounds, s, targets,
                                         k, bridge, self.stamp, self.all_ok if ok is None else ok,
                                         self.no_room, self.zero, pre_links, pre_nodes,
                                         self.W[12], self._probe, self._out, count)
            if used >= 0:
                return self._out[:used].copy(), count
            self._out = np.zeros(2 * len(self._out), dtype=np.int64)

    def bridges(self) -> ByteArray:
        """1 for each link whose loss disconnects its ends (undirected; parallel links never)."""
        import networkx as nx  # type: ignore[import-untyped, unused-ignore]

        per_pair: dict[tuple[int, int], set[int]] = {}
        for a in self._present.tolist():
            u, v = int(self.tails[a]), int(self.heads[a])
            per_pair.setdefault((min(u, v), max(u, v)), set()).add(a >> 1)
        g: Any = nx.Graph()
        g.add_nodes_from(range(self.n))
        g.add_edges_from(per_pair)
        out = self._nobridge.copy()
        for u, v in nx.bridges(g):
            links = per_pair[min(u, v), max(u, v)]
            if len(links) == 1:
                out[next(iter(links))] = 1
        return out

    def all_disjoint(self, k: int) -> tuple[IntArray, IntArray]:
        """Up to k greedy link-disjoint paths from every node to every other, as flat arrays:
        (arcs of every path, each followed by -1, in (source, target) order; paths per pair,
        `count[s * n + t]`). One compiled sweep per source; the bounds of every target come
        from one all-pairs Dijkstra; a bridge on the first path ends a pair at once."""
        n = self.n
        bounds = self.distances(list(range(n)), to=True)  # bounds[t, v] = dist v → t
        bridge, targets = self.bridges(), np.arange(n, dtype=np.int64)
        if len(self._out) < 32 * k * n:  # room for paths of ~32 hops: rarely grown again
            self._out = np.zeros(32 * k * n, dtype=np.int64)
        sweeps = [self._sweep(s, targets, bounds, k, None, self._none, self._none, bridge)
                  for s in range(n)]
        return np.concatenate([f for f, _ in sweeps]), np.concatenate([c for _, c in sweeps])


# ------------------------------------------------------------------ paths between named sites
@dataclass(frozen=True, slots=True)
class Path:
    """A simple path: `sites[i]` → `sites[i+1]` over link `links[i]`."""

    sites: tuple[str, ...]
    links: tuple[str, ...]
    latency_ms: float

    @property
    def src(self) -> str:
        return self.sites[0]

    @property
    def dst(self) -> str:
        return self.sites[-1]

    @property
    def hops(self) -> int:
        return len(self.links)

    def arcs(self) -> tuple[tuple[str, str], ...]:
        """(link id, site the traffic leaves from) for each hop: the direction used."""
        return tuple(zip(self.links, self.sites[:-1]))


class PathFinder:
    """Paths over the usable directions of one topology: `link.capacity_from(site, at) > 0`.

    Weight "latency" sums `latency_ms`, "hops" counts links. A link to a site missing from
    the topology is never used. Build once per topology, query many times (not thread-safe).
    """

    def __init__(self, topology: Topology, weight: Weight = "latency", at: float | None = None):
        if weight not in ("latency", "hops"):
            raise ValueError(f"weight must be 'latency' or 'hops', not {weight!r}")
        self.topology = topology
        self.weight: Weight = weight
        self.site_ids: list[str] = list(topology.sites)  # sorted by Topology
        self.index: dict[str, int] = {s: i for i, s in enumerate(self.site_ids)}
        self.link_ids: list[str] = list(topology.links)
        self._link_pos = {lid: i for i, lid in enumerate(self.link_ids)}
        tails: list[int] = []
        heads: list[int] = []
        wts: list[float] = []
        lats: list[float] = []
        present: list[bool] = []
        for link in topology.links.values():
            known = link.a in self.index and link.b in self.index
            ia, ib = self.index.get(link.a, 0), self.index.get(link.b, 0)
            w = link.latency_ms if weight == "latency" else 1.0
            for u, v, frm in ((ia, ib, link.a), (ib, ia, link.b)):
                tails.append(u)
                heads.append(v)
                wts.append(w)
                lats.append(link.latency_ms)
                present.append(known and link.capacity_from(frm, at) > 0)
        self.graph = Graph(len(self.site_ids), tails, heads, wts, present)
        self._lat = lats
        self._heads = heads
        self._h: dict[int, FloatArray] = {}

    def _bound(self, t: int) -> FloatArray:
        got = self._h.get(t)
        if got is None:
            got = self._h[t] = self.graph.distances(t, to=True)
        return got

    def _to_path(self, hop: Hop) -> Path:
        return self.make(hop[0][0], hop[1])

    def _ids(self, src: str, dst: str) -> tuple[int, int]:
        try:
            return self.index[src], self.index[dst]
        except KeyError as exc:
            raise KeyError(f"unknown site {exc.args[0]!r}") from None

    def _bans(self, links: Iterable[str], sites: Iterable[str]) -> tuple[set[int], set[int]]:
        return ({self._link_pos[x] for x in links if x in self._link_pos},
                {self.index[x] for x in sites if x in self.index})

    def shortest(self, src: str, dst: str, *, exclude_links: Iterable[str] = (),
                 exclude_sites: Iterable[str] = ()) -> Path | None:
        """The best path, or None when dst is unreachable (or src == dst)."""
        s, t = self._ids(src, dst)
        bl, bn = self._bans(exclude_links, exclude_sites)
        if s in bn or t in bn:
            return None
        found = self.graph.search(s, t, self._bound(t), ban_links=bl, ban_nodes=bn)
        return None if found is None else self._to_path(found)

    def edge_disjoint(self, src: str, dst: str, k: int, *, exclude_links: Iterable[str] = (),
                      exclude_sites: Iterable[str] = ()) -> list[Path]:
        """Up to k link-disjoint paths, shortest first (greedy removal, see module doc)."""
        s, t = self._ids(src, dst)
        bl, bn = self._bans(exclude_links, exclude_sites)
        if s in bn or t in bn or s == t:
            return []
        hops = self.graph.disjoint(s, t, k, self._bound(t), ban_links=bl, ban_nodes=bn)
        return [self._to_path(h) for h in hops]

    def k_shortest(self, src: str, dst: str, k: int) -> list[Path]:
        """Up to k loopless shortest paths in order (Yen's algorithm), ties stable."""
        s, t = self._ids(src, dst)
        return [self._to_path(h) for h in self.graph.k_shortest(s, t, k, self._bound(t))]

    def all_pairs_edge_disjoint(
        self, k: int, pairs: Iterable[tuple[str, str]] | None = None
    ) -> Mapping[tuple[str, str], Sequence[Path]]:
        """`edge_disjoint` for every ordered pair (or the given ones), in sorted pair order.

        All pairs come as a `PathSet`: flat arrays from one compiled sweep per source (1,000
        sites in seconds), each pair's `Path`s made only when asked for.
        """
        if pairs is not None:
            return {(a, b): self.edge_disjoint(a, b, k) for a, b in sorted(set(pairs))}
        return PathSet(self, *self.graph.all_disjoint(k))

    def make(self, s: int, arcs: Sequence[int]) -> Path:
        """The `Path` leaving site index s over these arcs."""
        ids, heads = self.site_ids, self._heads
        return Path((ids[s],) + tuple(ids[heads[a]] for a in arcs),
                    tuple(self.link_ids[a >> 1] for a in arcs), sum(self._lat[a] for a in arcs))


class PathSet(Mapping[tuple[str, str], Sequence[Path]]):
    """Paths for every ordered site pair, kept as flat arrays (a 1,000-site WAN has ~2
    million paths: as Python objects they would cost more time and memory than finding them).
    Behaves as a read-only mapping (src, dst) → [Path, ...]; `arrays()` serves `mcf`."""

    def __init__(self, finder: PathFinder, flat: IntArray, count: IntArray) -> None:
        self.finder = finder
        n = len(finder.site_ids)
        sep = np.flatnonzero(flat == -1)
        lengths = np.diff(np.concatenate(([-1], sep))) - 1
        self.arcs = flat[flat >= 0]
        self.start = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        self.count = count
        self.first = np.concatenate(([0], np.cumsum(count)[:-1])).astype(np.int64)
        self.src = np.repeat(np.arange(n * n, dtype=np.int64) // n, count)
        self._n = n

    def pair(self, src: str, dst: str) -> tuple[int, int]:
        """(first path id, number of paths) of a pair; (0, 0) for an unknown site."""
        idx = self.finder.index
        if src not in idx or dst not in idx:
            return 0, 0
        r = idx[src] * self._n + idx[dst]
        return int(self.first[r]), int(self.count[r])

    def path(self, i: int) -> Path:
        return self.finder.make(int(self.src[i]),
                                self.arcs[self.start[i]:self.start[i + 1]].tolist())

    def __getitem__(self, key: tuple[str, str]) -> list[Path]:
        if key[0] not in self.finder.index or key[1] not in self.finder.index:
            raise KeyError(key)
        f, c = self.pair(*key)
        return [self.path(i) for i in range(f, f + c)]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        ids = self.finder.site_ids
        return ((a, b) for a in ids for b in ids if a != b)

    def __len__(self) -> int:
        return self._n * (self._n - 1)

    @property
    def n_paths(self) -> int:
        return len(self.start) - 1

    def first_arcs(self) -> dict[tuple[str, str], tuple[tuple[str, str], ...]]:
        """(link id, site left) of each connected pair's first (shortest) path."""
        pf, n = self.finder, self._n
        ids, links, tails = pf.site_ids, pf.link_ids, pf.graph.tails.tolist()
        arcs, start = self.arcs.tolist(), self.start.tolist()
        out: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}
        for r in np.flatnonzero(self.count).tolist():
            i = int(self.first[r])
            out[ids[r // n], ids[r % n]] = tuple((links[a >> 1], ids[tails[a]])
                                                 for a in arcs[start[i]:start[i + 1]])
        return out


_CACHE: list[tuple[Topology, str, float | None, PathFinder]] = []
_CACHE_SIZE = 8


def finder(topology: Topology, weight: Weight = "latency", at: float | None = None) -> PathFinder:
    """A cached `PathFinder` for this topology value (identity-keyed, small LRU)."""
    for i, (topo, w, t, pf) in enumerate(_CACHE):
        if topo is topology and w == weight and t == at:
            if i:
                _CACHE.insert(0, _CACHE.pop(i))
            return pf
    pf = PathFinder(topology, weight, at)
    _CACHE.insert(0, (topology, weight, at, pf))
    del _CACHE[_CACHE_SIZE:]
    return pf


def shortest_path(
    topology: Topology, src: str, dst: str, weight: Weight = "latency"
) -> Path | None:
    return finder(topology, weight).shortest(src, dst)


def k_shortest_paths(
    topology: Topology, src: str, dst: str, k: int, weight: Weight = "latency"
) -> list[Path]:
    return finder(topology, weight).k_shortest(src, dst, k)


def edge_disjoint_paths(
    topology: Topology, src: str, dst: str, k: int, weight: Weight = "latency"
) -> list[Path]:
    return finder(topology, weight).edge_disjoint(src, dst, k)
