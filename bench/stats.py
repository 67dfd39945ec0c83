"""Statistics shared by the benchmarks."""

from __future__ import annotations


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile, q in 0..1 (rank round(q·(n−1)) of the sorted values); NaN if empty."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]
