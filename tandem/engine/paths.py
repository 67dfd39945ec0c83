"""Paths between named sites: shortest, k-shortest and link-disjoint, for any topology.

Every path in Tandem comes from one search: the compiled A* of `kernels`, driven by
`graph.Graph`. The joint engine reaches it through `network.Network` (integer sites and link
directions, capacities at an instant); everything that speaks in site and link ids — the TE
benchmark's path sets (`mcf.py`, `bench/te.py`), the baselines' CSPF, the SDN reroute
benchmark — goes through `PathFinder` here, which also serves every ordered pair of a
1,000-site WAN at once as flat arrays (`PathSet`).

This module is the import point for path code: `Graph`, `Hop` and the array type aliases are
re-exported from `graph` and `kernels` so that callers need not know how the search is split.
Ties, disjointness and determinism are described in `kernels`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .graph import Graph, Hop
from .kernels import INF, ByteArray, FloatArray, IntArray
from .topology import Topology

__all__ = ["INF", "ByteArray", "FloatArray", "Graph", "Hop", "IntArray", "Path", "PathFinder",
           "PathSet", "Weight", "edge_disjoint_paths", "finder", "k_shortest_paths",
           "shortest_path"]

Weight = Literal["latency", "hops"]


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
