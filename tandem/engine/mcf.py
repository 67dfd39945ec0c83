"""The path-based multi-commodity flow instance shared by the TE engine and the LP bound.

Both solvers must see exactly the same input, so the instance is built once: link directions
("arcs") with their capacities, demands with their volumes, and candidate paths as a sparse
path × arc incidence matrix. Solutions are flows per path; `violation` checks one against
every capacity and demand so benchmarks and tests can verify feasibility independently of
the solver that produced it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped]

from .paths import Path, PathSet
from .topology import Topology
from .traffic import Demand

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class FlowProblem:
    """Maximise Σ path flow s.t. Σ flow over each arc ≤ its capacity, Σ per demand ≤ volume."""

    arcs: tuple[tuple[str, str], ...]  # (link id, site the traffic leaves from)
    capacity: FloatArray  # per arc
    demands: tuple[Demand, ...]
    volume: FloatArray  # per demand
    paths: Sequence[Path]  # a lazy view when built from a `PathSet`
    path_demand: IntArray  # demand index of each path
    path_hops: IntArray
    # CSR, paths × arcs, 1.0 where the path uses the arc.
    incidence: sp.csr_matrix

    @property
    def n_paths(self) -> int:
        return len(self.paths)

    @classmethod
    def build(
        cls,
        topology: Topology,
        demands: Sequence[Demand],
        paths: Mapping[tuple[str, str], Sequence[Path]] | Callable[[str, str], Sequence[Path]],
        at: float | None = None,
    ) -> FlowProblem:
        """Instance for these demands; `paths` maps (src, dst) to candidates (or computes them).

        Demands with no candidate path stay in the instance (they simply get no flow).
        A `PathSet` is read as arrays (vectorised: millions of paths in seconds).
        """
        if isinstance(paths, PathSet):
            return cls._from_set(topology, demands, paths, at)
        lookup = paths if callable(paths) else (lambda a, b: paths.get((a, b), ()))
        arc_index: dict[tuple[str, str], int] = {}
        arcs: list[tuple[str, str]] = []
        caps: list[float] = []
        rows: list[int] = []
        cols: list[int] = []
        plist: list[Path] = []
        pdem: list[int] = []
        for di, d in enumerate(demands):
            for p in lookup(d.src, d.dst):
                pi = len(plist)
                plist.append(p)
                pdem.append(di)
                for arc in p.arcs():
                    ai = arc_index.get(arc)
                    if ai is None:
                        ai = arc_index[arc] = len(arcs)
                        arcs.append(arc)
                        caps.append(topology.links[arc[0]].capacity_from(arc[1], at))
                    rows.append(pi)
                    cols.append(ai)
        inc = sp.csr_matrix(
            (np.ones(len(rows)), (np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64))),
            shape=(len(plist), len(arcs)),
        )
        inc.sum_duplicates()
        return cls(
            arcs=tuple(arcs),
            capacity=np.array(caps, dtype=np.float64),
            demands=tuple(demands),
            volume=np.array([d.volume for d in demands], dtype=np.float64),
            paths=tuple(plist),
            path_demand=np.array(pdem, dtype=np.int64),
            path_hops=np.array([p.hops for p in plist], dtype=np.int64),
            incidence=inc,
        )

    @classmethod
    def _from_set(cls, topology: Topology, demands: Sequence[Demand], ps: PathSet,
                  at: float | None) -> FlowProblem:
        """The same instance as `build` gives (arcs numbered in order of first use), from
        the path set's arrays."""
        pairs = np.array([ps.pair(d.src, d.dst) for d in demands], dtype=np.int64).reshape(-1, 2)
        path_ids = _ranges(pairs[:, 0], pairs[:, 1])
        pdem = np.repeat(np.arange(len(demands), dtype=np.int64), pairs[:, 1])
        lens = ps.start[path_ids + 1] - ps.start[path_ids]
        used = ps.arcs[_ranges(ps.start[path_ids], lens)]
        uniq, first, inv = np.unique(used, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        pf = ps.finder
        tails = pf.graph.tails
        arcs = tuple((pf.link_ids[int(a) >> 1], pf.site_ids[int(tails[a])]) for a in uniq[order])
        caps = [topology.links[lid].capacity_from(frm, at) for lid, frm in arcs]
        rows = np.repeat(np.arange(len(path_ids), dtype=np.int64), lens)
        inc = sp.csr_matrix((np.ones(len(rows)), (rows, rank[inv.ravel()])),
                            shape=(len(path_ids), len(arcs)))
        inc.sum_duplicates()
        return cls(arcs=arcs, capacity=np.array(caps, dtype=np.float64), demands=tuple(demands),
                   volume=np.array([d.volume for d in demands], dtype=np.float64),
                   paths=_PathView(ps, path_ids), path_demand=pdem,
                   path_hops=lens.astype(np.int64), incidence=inc)

    def arc_load(self, flow: FloatArray) -> FloatArray:
        return np.asarray(self.incidence.T @ flow, dtype=np.float64)

    def demand_flow(self, flow: FloatArray) -> FloatArray:
        return np.bincount(self.path_demand, weights=flow, minlength=len(self.demands)).astype(
            np.float64
        )

    def violation(self, flow: FloatArray) -> float:
        """Largest excess over a capacity, a volume, or below zero (0.0 when feasible)."""
        if flow.size == 0:
            return 0.0
        worst = max(0.0, float(-flow.min()))
        if self.capacity.size:
            worst = max(worst, float((self.arc_load(flow) - self.capacity).max()))
        if self.volume.size:
            worst = max(worst, float((self.demand_flow(flow) - self.volume).max()))
        return worst


@dataclass(frozen=True, eq=False)
class FlowSolution:
    flow: FloatArray  # per path
    total: float
    seconds: float
    method: str
    # An upper bound on the LP optimum proven by the solver (dual value), when it has one:
    # total / bound is a certified lower bound on the solution's optimality ratio.
    bound: float | None = None


def _ranges(first: IntArray, count: IntArray) -> IntArray:
    """Concatenation of arange(first[i], first[i] + count[i]) over i, vectorised."""
    total = int(count.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(first - np.concatenate(([0], np.cumsum(count)[:-1])), count)
    return np.asarray(offsets + np.arange(total), dtype=np.int64)


class _PathView(Sequence[Path]):
    """The problem's paths, made from the path set only when someone reads them."""

    def __init__(self, ps: PathSet, ids: IntArray) -> None:
        self.ps, self.ids = ps, ids

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, i: int) -> Path: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[Path]: ...

    def __getitem__(self, i: int | slice) -> Path | Sequence[Path]:
        if isinstance(i, slice):
            return [self.ps.path(int(j)) for j in self.ids[i]]
        return self.ps.path(int(self.ids[i]))
