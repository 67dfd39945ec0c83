"""The compiled search kernels behind every path of Tandem (`graph.Graph` drives them).

Why kernels on flat arrays: a 1,000-site WAN has ~10^6 ordered site pairs. A decision must
touch only the few pairs it needs, each in microseconds, and the TE benchmark needs 4
link-disjoint paths for *every* pair in seconds. Plain Dijkstra explores half the graph per
query, so the search is A* guided by an exact lower bound (the distance to the target in the
full graph, from scipy's compiled Dijkstra, see `graph.Graph.distances`). Removing links or
directions (Yen's spurs, disjoint paths, full links on the residual network) only lengthens
distances, so the bound stays admissible and a search touches little more than its answer.
The kernels take integer arrays only, so a caller pays no per-query graph construction.

Why numba, and why cached: the same source runs interpreted without numba (identical results,
several times slower), so numba is a declared dependency but never a correctness one. Compiling
the kernels costs seconds, which a short-lived command (`tandem plan`, `tandem check`) would
pay on every run; `cache=True` writes the machine code next to this file (`__pycache__`), or
to numba's per-user cache when that is not writable, or to `NUMBA_CACHE_DIR` when set, so only
the first run after an install or an edit of this file compiles. `NUMBA_DISABLE_JIT=1` runs
the plain Python (for debugging).

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
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

_JIT: Callable[..., Any] | None
prange: Callable[..., Any]
try:  # the compiler is optional at run time: the kernels below are plain Python too
    import numba  # type: ignore[import-not-found, unused-ignore]

    _JIT, prange = numba.njit, numba.prange
except ImportError:  # pragma: no cover - exercised only where numba is missing
    _JIT, prange = None, range

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ByteArray = npt.NDArray[np.uint8]
_F = TypeVar("_F", bound=Callable[..., Any])
INF = float("inf")
# Pops of a search before it checks that its target is reachable at all (see `astar`).
PROBE_AT = 128
COMPILED = _JIT is not None


def compiled(fn: _F) -> _F:
    """`numba.njit` with an on-disk cache (see the module doc), or `fn` itself."""
    return fn if _JIT is None else cast(_F, _JIT(cache=True, nogil=True)(fn))


def compiled_parallel(fn: _F) -> _F:
    """As `compiled`, with `prange` loops run on all cores (numba's own thread pool)."""
    return fn if _JIT is None else cast(_F, _JIT(cache=True, nogil=True, parallel=True)(fn))


# The graph is passed to the kernels as G = (indptr, nbr, arcs, tails, heads): the forward
# adjacency sorted by (node, neighbour, arc), and each arc's ends; the work arrays as W = (link_ban,
# node_ban, arc_ban, dist, glat, hops, prev, mark, heap key, heap hops, heap node, heap g,
# seen, queue).
# A ban array entry equal to the search's stamp bans that link/node/arc; `mark[v] == ms` says
# v's labels belong to this search: no array is ever cleared between searches.


@compiled
def sift_down(key: FloatArray, hop: IntArray, node: IntArray, g: FloatArray, size: int,
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


@compiled
def astar(G: Any, W: Any, wt: FloatArray, lat: FloatArray, s: int, t: int, h: FloatArray,
           hl: FloatArray, budget: float, stamp: int, ms: int, ok: ByteArray, room: FloatArray,
           need: float) -> bool:
    """A* from s to t; True when t is reached (`prev[v]`: adjacency entry reaching v).

    The heap holds (objective + bound, hops, node, objective); when full, its stale entries
    are dropped (live ones are at most one per node). After `PROBE_AT` pops a plain
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
        sift_down(hk, hh, hn, hg, size, 0)
        if g != dist[u] or hp != hops[u]:
            continue  # stale: u was improved since
        if u == t:
            return True
        pops += 1
        if pops == PROBE_AT and not reach(G, W, s, t, stamp, ms, ok, room, need):
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
                    sift_down(hk, hh, hn, hg, size, i)
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


@compiled
def reach(G: Any, W: Any, s: int, t: int, stamp: int, ms: int, ok: ByteArray,
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


@compiled
def walk(G: Any, W: Any, s: int, t: int) -> IntArray:
    """The arcs of the path the last search found from s to t."""
    arcs, tails = G[2], G[3]
    prev, m = W[6], W[5][t]
    out = np.empty(m, np.int64)
    v = t
    for i in range(m - 1, -1, -1):
        out[i] = arcs[prev[v]]
        v = tails[out[i]]
    return out


@compiled
def cut_off(R: Any, start: int, goal: int, link_ban: IntArray, stamp: int, seen: IntArray,
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


@compiled
def disjoint_sweep(G: Any, R: Any, W: Any, wt: FloatArray, bounds: FloatArray, s: int,
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
                if (cut_off(G, s, t, link_ban, stamp, seen, c - 2, queue)
                        or cut_off(R, t, s, link_ban, stamp, seen, c - 1, queue)
                        or not reach(G, W, s, t, stamp, c, ok, room, 0.0)):
                    break
            c += 1
            if not astar(G, W, wt, wt, s, t, bounds[ti], zero, INF, stamp, c, ok, room, 0.0):
                break
            path = walk(G, W, s, t)
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


@compiled
def yen(G: Any, W: Any, wt: FloatArray, h: FloatArray, zero: FloatArray, ok: ByteArray,
         room: FloatArray, s: int, t: int, k: int, stamp0: int) -> Any:
    """Yen's k shortest loopless paths s→t as arc arrays; candidates tie on (cost, hops,
    order found). Lawler's refinement: a path's spurs start where it left its parent (the
    spurs before that were searched with the parent, under the same bans). Returns (paths,
    last stamp used)."""
    node_ban, arc_ban = W[1], W[2]
    c = stamp0 + 1
    acc = [np.empty(0, np.int64)]
    acc.pop()
    if not astar(G, W, wt, wt, s, t, h, zero, INF, c, c, ok, room, 0.0):
        return acc, c
    acc.append(walk(G, W, s, t))
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
            if not astar(G, W, wt, wt, v, t, h, zero, INF, c, c, ok, room, 0.0):
                continue
            tot = np.concatenate((last[:i], walk(G, W, v, t)))
            if known(tot, acc) or known(tot, cands):
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


@compiled
def known(p: IntArray, paths: Any) -> bool:
    """Whether the arc array `p` is already one of `paths` (Yen's duplicate check)."""
    for q in paths:
        if q.shape[0] == p.shape[0] and np.array_equal(q, p):
            return True
    return False


@compiled_parallel
def sweep_many(G: Any, R: Any, wt: FloatArray, bounds: FloatArray, sources: IntArray,
               targets: IntArray, k: int, bridge: ByteArray, ok: ByteArray, room: FloatArray,
               zero: FloatArray, none: IntArray, arcs: int, heap: int, probe: int,
               out: IntArray, used: IntArray, count: IntArray) -> None:
    """`disjoint_sweep` from every source at once, in parallel (the TE path set of every
    ordered pair: 10^6 pairs at 1,000 sites). Each source gets its own work arrays, so the
    searches share nothing but the read-only graph, and the result of a source does not
    depend on the others or on the thread that ran it. Row i of `out`/`count` receives source
    i's paths; `used[i]` is -1 when its row was too small (the caller re-runs that source)."""
    n = G[0].shape[0] - 1
    for i in prange(sources.shape[0]):
        W = (np.zeros(arcs // 2 + 1, np.int64), np.zeros(n, np.int64), np.zeros(arcs, np.int64),
             np.zeros(n, np.float64), np.zeros(n, np.float64), np.zeros(n, np.int64),
             np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(heap, np.float64),
             np.zeros(heap, np.int64), np.zeros(heap, np.int64), np.zeros(heap, np.float64),
             np.zeros(n, np.int64), np.zeros(n + 1, np.int64))
        pos, _ = disjoint_sweep(G, R, W, wt, bounds, sources[i], targets, k, bridge, 0, ok,
                                room, zero, none, none, W[12], np.zeros(probe, np.int64),
                                out[i], count[i])
        used[i] = pos
