"""`Graph`: a directed graph over integer nodes laid out for the compiled kernels.

Why a class around `kernels`: the kernels want CSR adjacency, per-arc arrays and work arrays
that are never cleared (a search marks what it touched with a fresh stamp), and exact distance
bounds from scipy's compiled Dijkstra. Building those once per topology *structure* and
reusing them is what makes a search cost microseconds; this class owns them and offers the
queries the engine needs (constrained search, Yen's k shortest, greedy link-disjoint paths for
one pair or for every pair at once). Callers: `network.Network` (the joint engine) and
`paths.PathFinder` (paths between named sites: TE benchmark, SDN, baselines).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix  # type: ignore[import-untyped]
from scipy.sparse.csgraph import dijkstra as _sp_dijkstra  # type: ignore[import-untyped]

from .kernels import (INF, ByteArray, FloatArray, IntArray, astar, disjoint_sweep, sweep_many,
                      walk, yen)

# Reverse breadth-first check before each disjoint search: a target cut off behind a small
# set of nodes is recognised after visiting at most this many, instead of exhausting the
# (large) source side of the graph.
_CUT_PROBE = 64
# Sources swept together by `all_disjoint`, and the path length (hops) their output rows are
# sized for: 16 x 32 x k x n integers; a source needing more is re-run alone.
_CHUNK = 16
_ROW_HOPS = 32
# Candidate tuple of a search: (node sequence, arc sequence).
Hop = tuple[tuple[int, ...], tuple[int, ...]]


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
        cap = self._heap = n + len(ids) + 1
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
        if not astar(self.G, self.W, self.weight if weight is None else weight, self.latency,
                      s, t, h, self.zero if hl is None else hl, budget, st, st,
                      self.all_ok if ok is None else ok,
                      self.no_room if room is None else room, need):
            return None
        return self._hop(s, walk(self.G, self.W, s, t))

    def k_shortest(self, s: int, t: int, k: int, h: FloatArray) -> list[Hop]:
        """Up to k loopless shortest paths in order (Yen's algorithm)."""
        if s == t or k <= 0:
            return []
        paths, self.stamp = yen(self.G, self.W, self.weight, h, self.zero, self.all_ok,
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
        """`disjoint_sweep` from s: (arcs of the paths, each followed by -1; paths per target)."""
        count = np.zeros(len(targets), dtype=np.int64)
        while True:
            used, self.stamp = disjoint_sweep(self.G, self.R, self.W, self.weight, bounds, s, targets,
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
        `count[s * n + t]`). One compiled sweep per source, sources in parallel on all cores
        (`kernels.sweep_many`; the result is the same as one by one); the bounds of every
        target come from one all-pairs Dijkstra; a bridge on the first path ends a pair at
        once."""
        n = self.n
        bounds = self.distances(list(range(n)), to=True)  # bounds[t, v] = dist v → t
        bridge, targets = self.bridges(), np.arange(n, dtype=np.int64)
        width = _ROW_HOPS * k * n
        rows = np.zeros((min(_CHUNK, n), width), dtype=np.int64)
        flats: list[IntArray] = []
        counts: list[IntArray] = []
        for c0 in range(0, n, _CHUNK):
            src = np.arange(c0, min(n, c0 + _CHUNK), dtype=np.int64)
            used = np.zeros(len(src), dtype=np.int64)
            count = np.zeros((len(src), n), dtype=np.int64)
            sweep_many(self.G, self.R, self.weight, bounds, src, targets, k, bridge, self.all_ok,
                       self.no_room, self.zero, self._none, len(self.tails), self._heap,
                       _CUT_PROBE, rows, used, count)
            for j, s in enumerate(src.tolist()):
                if used[j] >= 0:
                    flats.append(rows[j, :used[j]].copy())
                    counts.append(count[j].copy())
                else:  # more than `width` arcs: this source alone, with a growing buffer
                    f, c = self._sweep(s, targets, bounds, k, None, self._none, self._none,
                                       bridge)
                    flats.append(f)
                    counts.append(c)
        return np.concatenate(flats), np.concatenate(counts)
