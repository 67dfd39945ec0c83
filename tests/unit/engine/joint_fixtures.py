"""Hand-made federations for the joint-engine unit tests (helper A's tests)."""

from __future__ import annotations

import random

from tandem.engine.topology import Link, Site, Topology


def five_sites() -> Topology:
    """A, B in DE; C in FR; D in CH; E in US, single-homed behind C over a long link.

        A --2ms-- B --5ms-- C --40ms-- E
        |  \\______8ms____/ |
        3ms                3ms
        |                  |
        +------- D --------+
    """
    sites = {
        "A": Site("A", jurisdiction="DE", vcpus=64, memory_gib=256, cost_per_vcpu_hour=0.05),
        "B": Site("B", jurisdiction="DE", vcpus=64, memory_gib=256, cost_per_vcpu_hour=0.04),
        "C": Site("C", jurisdiction="FR", vcpus=64, memory_gib=256, cost_per_vcpu_hour=0.03),
        "D": Site("D", jurisdiction="CH", vcpus=64, memory_gib=256, cost_per_vcpu_hour=0.06),
        "E": Site("E", jurisdiction="US", vcpus=64, memory_gib=256, cost_per_vcpu_hour=0.01,
                  hypervisors=frozenset({"kvm"})),
    }
    links = [
        Link("ab", "A", "B", 1000, 1000, 2.0, jurisdictions=frozenset({"DE"})),
        Link("bc", "B", "C", 1000, 1000, 5.0, jurisdictions=frozenset({"DE", "FR"})),
        Link("ad", "A", "D", 1000, 1000, 3.0, jurisdictions=frozenset({"DE", "CH"})),
        Link("dc", "D", "C", 1000, 1000, 3.0, jurisdictions=frozenset({"CH", "FR"})),
        Link("ac", "A", "C", 300, 300, 8.0, jurisdictions=frozenset({"DE", "FR"})),
        Link("ce", "C", "E", 500, 200, 40.0, jurisdictions=frozenset({"FR", "US"})),
    ]
    return Topology(sites, {ln.link_id: ln for ln in links}, "five")


COUNTRIES = ("DE", "FR", "CH", "US", "NL")


def random_topology(seed: int, n: int = 6) -> Topology:
    """A connected random federation: a ring plus chords, random capacities and countries."""
    rng = random.Random(seed)
    sites = {}
    for i in range(n):
        sid = f"s{i}"
        sites[sid] = Site(sid, jurisdiction=rng.choice(COUNTRIES), vcpus=rng.choice((16, 32, 64)),
                          memory_gib=256, cost_per_vcpu_hour=rng.choice((0.01, 0.03, 0.05)),
                          hypervisors=frozenset(rng.sample(("kvm", "vsphere"), rng.randint(1, 2))))
    links = {}
    pairs = [(i, (i + 1) % n) for i in range(n)]
    for _ in range(n // 2):
        a, b = rng.sample(range(n), 2)
        if (a, b) not in pairs and (b, a) not in pairs:
            pairs.append((a, b))
    for k, (a, b) in enumerate(pairs):
        ja, jb = sites[f"s{a}"].jurisdiction, sites[f"s{b}"].jurisdiction
        links[f"l{k}"] = Link(f"l{k}", f"s{a}", f"s{b}", rng.choice((200.0, 500.0, 1000.0)),
                              rng.choice((200.0, 500.0, 1000.0)), rng.uniform(1, 10),
                              jurisdictions=frozenset({ja, jb}),
                              cost_per_mbps=rng.choice((0.0, 0.001)))
    return Topology(sites, links, f"random{seed}")
