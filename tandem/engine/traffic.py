"""Traffic demands and seeded gravity traffic matrices, as in the WAN TE literature.

Gravity model (NCFlow/POP/Teal generate theirs this way): each site gets a weight equal to
the total capacity of its usable link directions (out + in), multiplied by a seeded random
factor uniform in [0.1, 1.0) so that seeds give different matrices; the share of traffic from
i to j (i ≠ j) is w_i·w_j / Σ_{k≠l} w_k·w_l.

Scale factor, defined exactly (our choice, stated because the papers' base totals differ):
the base total S is the largest total demand whose gravity matrix, routed entirely on each
pair's first candidate path (its shortest path), fits every link direction's capacity — the
"all aggregates fit on their shortest paths" base of ngvozdiev's TE tooling. A matrix at
scale factor σ has total demand σ·S. So at σ = 1 everything can be routed (LP optimum =
total demand, maximum utilisation on shortest paths exactly 1), and σ = 16 or 64 overloads
the network 16× or 64× at its shortest-path bottleneck.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .topology import Topology


@dataclass(frozen=True, slots=True)
class Demand:
    """Traffic of `volume` Mbps from site `src` to site `dst`."""

    src: str
    dst: str
    volume: float
    demand_id: str = ""


def node_weights(topology: Topology, seed: int | None = None) -> dict[str, float]:
    """Gravity weight per site: total usable capacity at the site, times a seeded factor."""
    w = {s: 0.0 for s in topology.sites}
    for link in topology.links.values():
        cap = link.capacity_from(link.a) + link.capacity_from(link.b)
        if link.a in w:
            w[link.a] += cap
        if link.b in w:
            w[link.b] += cap
    if seed is not None:
        rng = np.random.default_rng(seed)
        factors = rng.uniform(0.1, 1.0, size=len(w))
        w = {s: v * float(f) for (s, v), f in zip(w.items(), factors)}
    return w


def gravity_shares(topology: Topology, seed: int | None = None) -> dict[tuple[str, str], float]:
    """Share of total traffic per ordered pair (sums to 1 over pairs of sites with weight)."""
    w = node_weights(topology, seed)
    ids = list(w)
    vec = np.array([w[s] for s in ids], dtype=float)
    outer = np.outer(vec, vec)
    np.fill_diagonal(outer, 0.0)
    total = float(outer.sum())
    if total <= 0:
        return {}
    out: dict[tuple[str, str], float] = {}
    for i, a in enumerate(ids):
        for j, b in enumerate(ids):
            if i != j and outer[i, j] > 0:
                out[(a, b)] = float(outer[i, j]) / total
    return out


def shortest_path_fit_total(
    topology: Topology,
    shares: Mapping[tuple[str, str], float],
    first_paths: Mapping[tuple[str, str], Sequence[tuple[str, str]]],
) -> float:
    """Largest total T such that T·shares routed on the given paths fits every capacity.

    `first_paths[pair]` lists the (link id, from-site) arcs of that pair's shortest path;
    pairs without a path carry nothing.
    """
    load: dict[tuple[str, str], float] = {}
    for pair, share in shares.items():
        for arc in first_paths.get(pair, ()):
            load[arc] = load.get(arc, 0.0) + share
    best = float("inf")
    for (lid, frm), l in load.items():
        if l > 0:
            best = min(best, topology.links[lid].capacity_from(frm) / l)
    return 0.0 if best == float("inf") else best


def gravity_demands(
    topology: Topology,
    scale: float,
    seed: int,
    first_paths: Mapping[tuple[str, str], Sequence[tuple[str, str]]],
) -> list[Demand]:
    """Gravity demands at a scale factor (see module doc), for pairs that have a path."""
    shares = gravity_shares(topology, seed)
    shares = {p: s for p, s in shares.items() if first_paths.get(p)}
    base = shortest_path_fit_total(topology, shares, first_paths)
    total = scale * base
    return [
        Demand(a, b, total * s, f"{a}->{b}") for (a, b), s in sorted(shares.items()) if s > 0
    ]
