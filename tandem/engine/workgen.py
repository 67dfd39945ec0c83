"""Seeded workload streams for benchmarks and property tests.

Each workload has one to three VM groups chained by traffic (g0→g1→g2, the web→app→db shape),
traffic from groups to one to three user sites (some with a latency bound, a few diverse), and
on a share of workloads a residency rule (VMs in the country of a random site, or the EU for an
EU country), a transit rule, or anti-affinity between the first two groups (an HA pair).
Bandwidths are drawn relative to the median link capacity so the same generator loads B4
(5 Gbps links) and GÉANT (1 Gbps default) alike. Only `random.Random(seed)` is used, so a seed
names a stream exactly.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Iterator
from itertools import islice
from typing import Any

from .jurisdiction import EU, normalise
from .network import Network
from .topology import SiteState, Topology
from .workload import Demand, Priority, Rules, VmGroup, WorkloadRequest


def diameter_ms(net: Network) -> float:
    """Largest shortest-path latency over all reachable pairs (one compiled all-pairs
    Dijkstra: a 1,000-site WAN takes a fraction of a second, no candidate paths needed)."""
    return net.diameter_ms()


def generate(topology: Topology, n: int, seed: int, **kw: Any) -> list[WorkloadRequest]:
    """The first `n` requests of `stream(topology, seed, **kw)`."""
    return list(islice(stream(topology, seed, **kw), n))


def stream(
    topology: Topology,
    seed: int,
    *,
    residency_share: float = 0.3,
    transit_share: float = 0.1,
    anti_affinity_share: float = 0.2,
    latency_share: float = 0.5,
    diverse_share: float = 0.1,
    bw_low: float = 0.03,
    bw_high: float = 0.12,
    net: Network | None = None,
) -> Iterator[WorkloadRequest]:
    """An endless seeded request stream (see the module docstring)."""
    rng = random.Random(seed)
    net = net or Network(topology)
    sites = [s for s, v in topology.sites.items() if v.state is SiteState.ACTIVE]
    countries = {s: normalise(topology.sites[s].jurisdiction) for s in sites}
    caps = sorted(c for c in net.cap if c > 0) or [1000.0]
    cap = statistics.median(caps)
    diam = diameter_ms(net) or 1.0
    i = -1
    while True:
        i += 1
        ng = rng.choice((1, 2, 2, 3, 3))
        groups = []
        for j in range(ng):
            vcpus = float(rng.choice((2, 4, 8)))
            groups.append(VmGroup(f"g{j}", rng.randint(1, 3), vcpus, 2 * vcpus,
                                  hypervisor=rng.choice(("", "", "", "kvm", "vsphere"))))
        demands: list[Demand] = []
        for j in range(ng - 1):
            demands.append(Demand(f"d{j}", f"g{j}", round(cap * rng.uniform(bw_low, bw_high), 1),
                                  to_group=f"g{j + 1}"))
        for u in range(rng.choice((1, 2, 3))):
            lat = round(diam * rng.uniform(0.35, 0.8), 2) if rng.random() < latency_share else 0.0
            demands.append(Demand(
                f"u{u}", f"g{rng.randrange(ng)}", round(cap * rng.uniform(bw_low, bw_high) / 2, 1),
                to_site=rng.choice(sites), max_latency_ms=lat,
                diverse=rng.random() < diverse_share))
        vm_j: tuple[str, ...] = ()
        transit: tuple[str, ...] = ()
        if rng.random() < residency_share:
            c = countries[rng.choice(sites)]
            if c:
                vm_j = ("EU",) if c in EU else (c,)
        if rng.random() < transit_share:
            c = countries[rng.choice(sites)]
            if c:
                transit = ("EU", "CH", "NO", "GB") if c in EU else (c,)
        anti: tuple[tuple[str, ...], ...] = ()
        if ng >= 2 and rng.random() < anti_affinity_share:
            anti = (("g0", "g1"),)
        yield WorkloadRequest(
            f"w{seed}-{i}", tuple(groups), tuple(demands), Rules.of(vm_j, transit, anti),
            tenant=f"t{rng.randrange(5)}", priority=Priority(rng.randint(1, 4)),
            request_id=f"r{seed}-{i}")
