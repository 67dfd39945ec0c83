"""The engine's traffic-engineering solver: maximise total flow over candidate paths, fast.

Problem (see `mcf.FlowProblem`): maximise Σ_p f_p subject to per-direction link capacity and
per-demand volume, flows split over each demand's candidate paths (4 link-disjoint shortest
paths in the TE benchmark).

Why this method. The LP has one variable per path (tens of thousands) but only a few hundred
capacity constraints. We therefore work in the space of link prices y (one per link
direction), which is small, with a proximal-point method:

    f^{k+1} = argmax_{f ∈ F_demands, A f ≤ c}  Σ f − (μ/2)·‖f − f^k‖²

Each proximal step is solved through its dual, a smooth, bound-constrained function of y
alone: for fixed prices every demand's best response is a projection of
`f^k + (1 − path price)/μ` onto {f ≥ 0, Σ f ≤ volume} (at most 4 numbers, vectorised over all
demands), and the gradient is `capacity − load`. L-BFGS-B minimises it in a few dozen
evaluations of two sparse mat-vecs each. The proximal point method converges to an exact LP
optimum (finitely, for LPs). Any prices y ≥ 0 also give an upper bound on the optimum (the LP
dual value), so after each step we know how far the best feasible point is from optimal and
stop once it is within `gap` (or after `outer` steps); that bound is returned with the
solution as a certificate. The iterates are slightly infeasible and are made feasible
exactly:

1. *repair*: every path is scaled by the smallest capacity/load ratio over its links, which
   provably puts every link at or under capacity;
2. *top-up*: rounds of a parallel fair-share fill of the remaining capacity and demand (every
   link's residual is split evenly among the paths that want it, so no round can exceed it).

Capacity is never exceeded by construction; `FlowProblem.violation` checks it independently.
Deterministic: no randomness, fixed iteration budgets and stopping rule.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from scipy.optimize import minimize  # type: ignore[import-untyped]

from .mcf import FloatArray, FlowProblem, FlowSolution, IntArray


@dataclass(frozen=True, slots=True)
class TEParams:
    """Iteration budget and regularisation; defaults tuned on GtsCe/Colt (docs/TOPOLOGY.md)."""

    mu_scale: float = 0.1  # μ = mu_scale / mean demand volume
    outer: int = 6  # proximal steps at most
    outer_min: int = 2  # proximal steps at least
    gap: float = 0.01  # stop once a feasible point is within this of the dual bound
    inner: int = 20  # L-BFGS-B iterations per proximal step
    topup_rounds: int = 8
    # Centre the first proximal step on the repaired shortest-path allocation (else on 0).
    warm_start: bool = True
    memory: int = 10  # L-BFGS corrections kept
    warm_topup_rounds: int = 8  # fair-share fill of the warm start before the first step


class _Layout:
    """Paths reordered into blocks of demands with the same number of paths.

    Within block `c` the paths of a demand are contiguous, so per-demand work is a plain
    (demands × c) numpy array with no padding; the sparse incidence is permuted to match.
    """

    def __init__(self, problem: FlowProblem) -> None:
        nd = len(problem.demands)
        pd = problem.path_demand
        counts = np.bincount(pd, minlength=nd)
        # Order: by path count, then demand index, then original path order (stable).
        order = np.lexsort((np.arange(len(pd)), pd, counts[pd]))
        self.perm: IntArray = order  # position in layout -> original path index
        dem_sorted = pd[order]
        self.blocks: list[tuple[int, int, int, IntArray]] = []  # (c, start, stop, demands)
        pos = 0
        for c in sorted(set(counts[counts > 0].tolist())):
            dems = np.flatnonzero(counts == c)
            stop = pos + c * len(dems)
            self.blocks.append((c, pos, stop, dem_sorted[pos:stop:c]))
            pos = stop
        self.path_demand: IntArray = dem_sorted
        inc = problem.incidence.tocsr()[order]
        self.inc: sp.csr_matrix = sp.csr_matrix(inc)
        self.inc_t: sp.csr_matrix = self.inc.T.tocsr()
        self.nd = nd
        self.n = len(pd)
        lens = np.diff(self.inc.indptr)
        self._nonempty = lens > 0
        self._all_nonempty = bool(self._nonempty.all())
        self._starts = self.inc.indptr[:-1][self._nonempty]
        # Position of each demand's first path in the layout (-1 when it has none).
        self.first = np.full(nd, -1, dtype=np.int64)
        for c, start, stop, dems in self.blocks:
            self.first[dems] = np.arange(start, stop, c)

    def demand_sum(self, f: FloatArray) -> FloatArray:
        out = np.zeros(self.nd)
        for c, start, stop, dems in self.blocks:
            out[dems] = f[start:stop].reshape(-1, c).sum(axis=1)
        return out

    def project(self, v: FloatArray, vol: FloatArray) -> FloatArray:
        out = np.empty_like(v)
        for c, start, stop, dems in self.blocks:
            if c == 1:
                out[start:stop] = np.clip(v[start:stop], 0.0, vol[dems])
            elif c == 2:
                pair = v[start:stop].reshape(-1, 2)
                out[start:stop] = _project2(pair[:, 0], pair[:, 1], vol[dems]).ravel()
            else:
                out[start:stop] = _project(v[start:stop].reshape(-1, c), vol[dems]).ravel()
        return out

    def path_min(self, per_arc: FloatArray) -> FloatArray:
        """Per path, the minimum of `per_arc` over its arcs (+inf for a path with none)."""
        idx = self.inc.indices
        if not idx.size:
            return np.full(self.n, np.inf)
        if self._all_nonempty:
            out: FloatArray = np.minimum.reduceat(per_arc[idx], self._starts)
            return out
        full = np.full(self.n, np.inf)
        full[self._nonempty] = np.minimum.reduceat(per_arc[idx], self._starts)
        return full


_NETWORKS: dict[int, tuple[tuple[int, int], ...]] = {
    1: (),
    2: ((0, 1),),
    3: ((0, 1), (1, 2), (0, 1)),
    4: ((0, 1), (2, 3), (0, 2), (1, 3), (1, 2)),
}


def _sort_desc(v: FloatArray) -> FloatArray:
    """Rows sorted in decreasing order; a sorting network on columns for k ≤ 4 (faster)."""
    k = v.shape[1]
    net = _NETWORKS.get(k)
    if net is None:
        out: FloatArray = -np.sort(-v, axis=1)
        return out
    cols = [v[:, i].copy() for i in range(k)]
    for i, j in net:
        hi = np.maximum(cols[i], cols[j])
        lo = np.minimum(cols[i], cols[j])
        cols[i], cols[j] = hi, lo
    return np.stack(cols, axis=1)


def _project2(a: FloatArray, b: FloatArray, cap: FloatArray) -> FloatArray:
    """`_project` for rows of two, in closed form (the common case on sparse WANs)."""
    hi = np.maximum(a, b)
    lo = np.minimum(a, b)
    theta2 = (hi + lo - cap) * 0.5  # both paths active
    theta = np.where(lo > theta2, theta2, hi - cap)  # else only the larger one
    theta = np.maximum(theta, 0.0)  # Σ within cap: no shift
    out: FloatArray = np.stack((np.maximum(a - theta, 0.0), np.maximum(b - theta, 0.0)), axis=1)
    return out


def _project(v: FloatArray, cap: FloatArray) -> FloatArray:
    """Row-wise Euclidean projection onto {f ≥ 0, Σ f ≤ cap}; -inf entries project to 0."""
    pos = np.maximum(v, 0.0)
    over = pos.sum(axis=1) > cap
    if not over.any():
        return pos
    vo = pos[over]  # negative entries never enter the active set, so clipping is harmless
    u = _sort_desc(vo)
    cs = np.cumsum(u, axis=1)
    ks = np.arange(1, u.shape[1] + 1, dtype=np.float64)
    theta = (cs - cap[over][:, None]) / ks
    active = (u > theta).sum(axis=1)  # a prefix: the largest k with u_k > theta_k
    th = theta[np.arange(len(active)), active - 1]
    pos[over] = np.maximum(vo - th[:, None], 0.0)
    return pos


def _repair(
    problem: FlowProblem, lay: _Layout, f: FloatArray, margin: float = 1e-12
) -> FloatArray:
    """Scale each path by min over its links of capacity/load (≤ 1): feasible afterwards."""
    load = lay.inc_t @ f
    c = problem.capacity
    # Links at or above (1 - margin)·capacity are scaled to (1 - margin)·capacity, so that any
    # other summation order of the same flows (error ~1e-16 relative) still fits.
    over = load > c * (1.0 - margin)
    if not over.any():
        return f
    ratio = np.ones_like(c)
    ratio[over] = c[over] / load[over] * (1.0 - margin)
    scale = np.minimum(lay.path_min(ratio), 1.0)
    out: FloatArray = f * scale
    return out


def _topup(
    problem: FlowProblem, lay: _Layout, f: FloatArray, rounds: int, min_gain: float = 0.0
) -> FloatArray:
    """Fill leftover capacity fairly: each link's residual split evenly among its takers.

    A path takes part in a round when its demand has volume left and none of its links is
    full; each gets min(its demand's remainder / the demand's takers, min over its links of
    residual / takers of that link), so no link and no demand can be overfilled.
    """
    c, vol = problem.capacity, problem.volume
    pd = lay.path_demand
    f = f.copy()
    for _ in range(rounds):
        res = np.maximum(c - lay.inc_t @ f, 0.0) * (1.0 - 1e-12)
        rd = np.maximum(vol - lay.demand_sum(f), 0.0)
        full = (res <= 1e-12 * (1.0 + c)).astype(np.float64)
        want = (rd[pd] > 1e-9 * (1.0 + vol[pd])) & ((lay.inc @ full) == 0.0)
        rows = np.flatnonzero(want)
        if rows.size == 0:
            break
        sub = lay.inc[rows]
        lens = np.diff(sub.indptr)
        takers = np.bincount(sub.indices, minlength=len(c)).astype(np.float64)
        share = res / np.maximum(takers, 1.0)
        lim = np.full(rows.size, np.inf)
        nz = lens > 0
        if sub.indices.size:
            lim[nz] = np.minimum.reduceat(share[sub.indices], sub.indptr[:-1][nz])
        dem = pd[rows]
        per_dem = np.bincount(dem, minlength=lay.nd).astype(np.float64)
        step = np.minimum(lim, rd[dem] / per_dem[dem])
        step = np.where(np.isfinite(step), step, 0.0)
        f[rows] += step
        if float(step.sum()) <= min_gain * float(f.sum()):
            break  # rounds have stopped paying
    return f


def solve_te(problem: FlowProblem, params: TEParams | None = None) -> FlowSolution:
    """Feasible path flows with near-optimal total (see module doc); never over capacity."""
    p = params or TEParams()
    t0 = time.perf_counter()
    n = problem.n_paths
    if n == 0 or len(problem.arcs) == 0:
        return FlowSolution(np.zeros(n), 0.0, time.perf_counter() - t0, "engine", 0.0)
    lay = _Layout(problem)
    vol = problem.volume
    c = problem.capacity
    mu = p.mu_scale / max(float(vol.mean()), 1e-12)
    # Start: every demand whole on its first (shortest) path, made feasible. When that
    # already carries every demand, it is optimal (the LP cannot exceed Σ volume).
    first = np.zeros(lay.n)
    has = lay.first >= 0
    first[lay.first[has]] = vol[has]
    start = _repair(problem, lay, first, margin=1e-9)
    if start.sum() >= vol[has].sum() * (1.0 - 1e-9):
        return _solution(lay, start, t0)
    if p.warm_topup_rounds:
        start = _topup(problem, lay, start, p.warm_topup_rounds)
    g = start if p.warm_start else np.zeros(lay.n)
    y = np.zeros(len(c))
    bounds = [(0.0, None)] * len(c)

    def best_response(y_: FloatArray, g_: FloatArray) -> tuple[FloatArray, FloatArray]:
        price = lay.inc @ y_
        return lay.project(g_ + (1.0 - price) / mu, vol), price

    bound = float("inf")
    best = start  # the best feasible point seen (repaired), for the final top-up
    best_total = float(start.sum())
    for step in range(p.outer):
        g_fixed = g

        def dual(y_: FloatArray) -> tuple[float, FloatArray]:
            f, price = best_response(y_, g_fixed)
            diff = f - g_fixed
            val = float(c @ y_) + float((1.0 - price) @ f) - 0.5 * mu * float(diff @ diff)
            grad = c - lay.inc_t @ f
            return val, grad

        res = minimize(
            dual, y, jac=True, method="L-BFGS-B", bounds=bounds,
            options={"maxiter": p.inner, "maxcor": p.memory, "gtol": 1e-10, "ftol": 1e-13},
        )
        y = np.asarray(res.x, dtype=np.float64)
        g, price = best_response(y, g_fixed)
        # Certificate: any prices y ≥ 0 give an upper bound on the LP optimum (weak duality).
        bound = min(bound, _dual_bound(lay, problem, y, price))
        feasible = _repair(problem, lay, g)
        total = float(feasible.sum())
        if total > best_total:
            best, best_total = feasible, total
        if step + 1 >= p.outer_min and best_total >= (1.0 - p.gap) * bound:
            break

    dense = _topup(problem, lay, best, p.topup_rounds, min_gain=2e-5)
    # Float sums of many small flows can land a hair above a capacity; scale those links'
    # paths down by a relative 1e-9 so that the re-summed load is strictly within it.
    dense = _repair(problem, lay, dense, margin=1e-9)
    return _solution(lay, dense, t0, bound)


def _dual_bound(lay: _Layout, problem: FlowProblem, y: FloatArray, price: FloatArray) -> float:
    """LP dual value at prices y: Σ c·y + Σ_d volume_d · max(0, 1 − cheapest path price)."""
    total = float(problem.capacity @ y)
    for c, start, stop, dems in lay.blocks:
        cheapest = price[start:stop].reshape(-1, c).min(axis=1)
        total += float(problem.volume[dems] @ np.maximum(0.0, 1.0 - cheapest))
    return total


def _solution(
    lay: _Layout, f: FloatArray, t0: float, bound: float | None = None
) -> FlowSolution:
    flow = np.zeros(lay.n)
    flow[lay.perm] = np.maximum(f, 0.0)
    total = float(flow.sum())
    if bound is None:  # every demand served in full: the optimum, and its own bound
        bound = total
    return FlowSolution(flow, total, time.perf_counter() - t0, "engine", bound)
