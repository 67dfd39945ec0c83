"""Path-formulation multi-commodity flow LP (maximise total flow) with HiGHS.

This is the reference optimum for the TE benchmark and the routing upper bound for the joint
engine: over the same candidate paths no routing can carry more. Solved with
`scipy.optimize.linprog(method="highs-ipm")` (interior point, HiGHS' IPX) on sparse matrices,
as the issue specifies; `method` may be changed to "highs-ds"/"highs" for comparisons.

    max Σ_p f_p   s.t.  Σ_{p ∋ e} f_p ≤ c_e  (each arc e),
                        Σ_{p ∈ P_d} f_p ≤ D_d (each demand d),   f ≥ 0.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from scipy.optimize import linprog  # type: ignore[import-untyped]

from .mcf import FlowProblem, FlowSolution


class LPError(RuntimeError):
    """HiGHS did not return an optimal solution."""


def solve_lp(problem: FlowProblem, method: str = "highs-ipm") -> FlowSolution:
    """Optimal path flows; `seconds` covers matrix assembly and the solve."""
    t0 = time.perf_counter()
    n = problem.n_paths
    if n == 0:
        return FlowSolution(np.zeros(0), 0.0, time.perf_counter() - t0, method, 0.0)
    member = sp.csr_matrix(
        (np.ones(n), (problem.path_demand, np.arange(n))), shape=(len(problem.demands), n)
    )
    a_ub = sp.vstack([problem.incidence.T.tocsr(), member], format="csr")
    b_ub = np.concatenate([problem.capacity, problem.volume])
    res = linprog(
        -np.ones(n), A_ub=a_ub, b_ub=b_ub, bounds=(0, None), method=method,
    )
    if res.status != 0 or res.x is None:
        raise LPError(f"HiGHS ({method}) failed: status {res.status}: {res.message}")
    flow = np.maximum(np.asarray(res.x, dtype=np.float64), 0.0)
    return FlowSolution(flow, float(-res.fun), time.perf_counter() - t0, method, float(-res.fun))
