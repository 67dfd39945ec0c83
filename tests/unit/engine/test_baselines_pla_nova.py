"""The OSM PLA and latency-aware Nova baselines (tandem.engine.baselines), on hand-made WANs.

    U --1ms-- N --5ms-- F        U: user PoP, no compute
     \\______20ms_______/        N: near U, 0.05/vCPU-h, 64 vCPU
                                 F: far from U, 0.01/vCPU-h, 128 vCPU (more free RAM)
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tandem.engine.baselines import (ROUTING_FAILED, NovaWeights, decide_nova_latency_cspf,
                                     decide_pla_cspf)
from tandem.engine.decide import decide
from tandem.engine.decision import Kind
from tandem.engine.state import State
from tandem.engine.topology import Link, Site, Topology
from tandem.engine.workload import Demand, Rules, VmGroup, WorkloadRequest


def wan(un_cap: float = 1000.0, link_cost: dict[str, float] | None = None) -> Topology:
    cost = link_cost or {}
    sites = {
        "U": Site("U", jurisdiction="DE"),
        "N": Site("N", jurisdiction="DE", vcpus=64, memory_gib=256, cost_per_vcpu_hour=0.05),
        "F": Site("F", jurisdiction="DE", vcpus=128, memory_gib=512, cost_per_vcpu_hour=0.01),
    }
    links = [
        Link("un", "U", "N", un_cap, un_cap, 1.0, cost_per_mbps=cost.get("un", 0.0)),
        Link("nf", "N", "F", 1000, 1000, 5.0, cost_per_mbps=cost.get("nf", 0.0)),
        Link("uf", "U", "F", 1000, 1000, 20.0, cost_per_mbps=cost.get("uf", 0.0)),
    ]
    return Topology(sites, {ln.link_id: ln for ln in links}, "unf")


def one(bw: float = 100.0, lat: float = 0.0, wid: str = "w", vcpus: float = 4) -> WorkloadRequest:
    return WorkloadRequest(wid, (VmGroup("g", 1, vcpus, 4),),
                           (Demand("u", "g", bw, to_site="U", max_latency_ms=lat),))


def test_pla_takes_the_cheapest_site_without_a_latency_bound() -> None:
    d = decide_pla_cspf(State.empty(wan()), one())
    assert d.kind is Kind.PLACED and d.site_of["g"] == "F"  # 0.01 < 0.05 per vCPU-hour
    # CSPF: the latency-shortest path with the bandwidth: F→N→U (6 ms), not F→U (20 ms).
    (p,) = d.paths
    assert p.sites == ("F", "N", "U") and p.bandwidth_mbps == 100


def test_pla_takes_the_cheapest_site_that_meets_the_latency_bound() -> None:
    d = decide_pla_cspf(State.empty(wan()), one(lat=3.0))
    assert d.kind is Kind.PLACED and d.site_of["g"] == "N"  # F is 6 ms away
    assert d.paths[0].sites == ("N", "U")


def test_pla_prices_the_inter_site_links_per_mbps() -> None:
    # Compute at F saves 4 x 0.04 = 0.16/h; the path F→N→U costs 100 Mbps x 0.01 = 1/h more.
    d = decide_pla_cspf(State.empty(wan(link_cost={"nf": 0.01, "uf": 0.01})), one())
    assert d.site_of["g"] == "N"
    assert d.cost == pytest.approx(4 * 0.05)


def test_pla_breaks_price_ties_by_latency_and_colocates_chatty_groups() -> None:
    topo = wan()
    topo = topo.with_site(replace(topo.sites["F"], cost_per_vcpu_hour=0.05))
    req = WorkloadRequest("w", (VmGroup("a", 1, 4, 4), VmGroup("b", 1, 4, 4)),
                          (Demand("d", "a", 300, to_group="b"), Demand("u", "b", 100, to_site="U")))
    d = decide_pla_cspf(State.empty(topo), req)
    assert d.site_of == {"a": "N", "b": "N"}  # equal price: least Mbps x latency


def test_pla_shares_compute_between_groups_on_one_site() -> None:
    topo = wan()
    topo = topo.with_site(replace(topo.sites["F"], vcpus=6))  # one 4-vCPU group fits, not two
    req = WorkloadRequest("w", (VmGroup("a", 1, 4, 4), VmGroup("b", 1, 4, 4)),
                          (Demand("d", "a", 10, to_group="b"),))
    d = decide_pla_cspf(State.empty(topo), req)
    assert d.kind is Kind.PLACED
    assert sorted(d.site_of.values()) == ["F", "N"]  # one on the cheap site, not both


def test_pla_is_blind_to_residual_bandwidth_and_cspf_rejects_naming_why() -> None:
    st = State.empty(wan(un_cap=150))
    st = st.apply(decide_pla_cspf(st, one(bw=100, lat=3.0, wid="w1")))
    d = decide_pla_cspf(st, one(bw=100, lat=3.0, wid="w2"))
    # PLA still picks N (the only site within 3 ms); U-N has 50 Mbps left; the detour N-F-U
    # takes 25 ms: CSPF finds a path with the bandwidth, out of the latency bound.
    assert d.kind is Kind.REJECTED and d.rejection is not None
    assert d.rejection.constraint == "latency"
    assert d.rejection.detail.startswith(f"{ROUTING_FAILED} g@N")
    # Unbounded: PLA's cheapest site F, whose shortest path crosses the full U-N link: CSPF
    # detours over F-U directly.
    d = decide_pla_cspf(st, one(bw=100, wid="w3"))
    assert d.kind is Kind.PLACED and d.site_of["g"] == "F" and d.paths[0].sites == ("F", "U")
    assert not st.apply(d).over_reserved()


def test_pla_rejects_when_no_site_meets_the_latency_bound() -> None:
    d = decide_pla_cspf(State.empty(wan()), one(lat=0.5))
    assert d.kind is Kind.REJECTED and d.rejection is not None
    assert d.rejection.constraint == "latency" and "PLA" in d.rejection.detail


def test_pla_keeps_anti_affine_groups_apart() -> None:
    req = WorkloadRequest("w", (VmGroup("a", 1, 4, 4), VmGroup("b", 1, 4, 4)),
                          (Demand("d", "a", 10, to_group="b"),), Rules.of(anti_affinity=(("a", "b"),)))
    d = decide_pla_cspf(State.empty(wan()), req)
    assert d.kind is Kind.PLACED and d.site_of["a"] != d.site_of["b"]


def test_nova_latency_weigher_prefers_the_low_latency_site() -> None:
    st = State.empty(wan())
    d = decide_nova_latency_cspf(st, one())
    # F has twice the free RAM and vCPUs (RAM and CPU weighers), N is 1 ms from the user
    # instead of 6: the latency weigher (multiplier 10) outweighs them.
    assert d.kind is Kind.PLACED and d.site_of["g"] == "N"
    assert d.paths[0].sites == ("N", "U")
    # Without the latency weigher, Nova spreads to the site with the most free RAM.
    d = decide_nova_latency_cspf(st, one(), weights=NovaWeights(latency=0.0))
    assert d.site_of["g"] == "F"


def test_nova_latency_weigher_places_a_partner_next_to_its_scheduled_group() -> None:
    req = WorkloadRequest("w", (VmGroup("a", 1, 4, 4), VmGroup("b", 1, 4, 4)),
                          (Demand("u", "a", 100, to_site="U"), Demand("d", "a", 300, to_group="b")))
    d = decide_nova_latency_cspf(State.empty(wan()), req)
    assert d.site_of == {"a": "N", "b": "N"}
    assert [p for p in d.paths if p.demand_id == "d"] == []  # same site: no WAN


def test_nova_latency_filter_rejects_naming_latency() -> None:
    d = decide_nova_latency_cspf(State.empty(wan()), one(lat=0.5))
    assert d.kind is Kind.REJECTED and d.rejection is not None
    assert d.rejection.constraint == "latency" and "latency filter" in d.rejection.detail


def test_nova_latency_then_cspf_rejects_for_bandwidth_when_every_path_is_full() -> None:
    st = State.empty(wan(un_cap=150))
    st = st.apply(decide_nova_latency_cspf(st, one(bw=100, wid="w1")))
    # N is still the nearest site; U-N has 50 Mbps left; N-F-U is 25 ms and free: CSPF takes it.
    d = decide_nova_latency_cspf(st, one(bw=100, wid="w2"))
    assert d.kind is Kind.PLACED and d.paths[0].sites == ("N", "F", "U")
    st = st.apply(d)
    # Out of N: 50 Mbps on N→U, 900 on N→F→U: no single path carries 950.
    big = one(bw=950, wid="w3")
    d = decide_nova_latency_cspf(st, big)
    assert d.kind is Kind.REJECTED and d.rejection is not None
    assert d.rejection.constraint == "bandwidth"
    assert d.rejection.detail.startswith(ROUTING_FAILED)
    # The joint engine, on the same residual network, splits it over both paths.
    j = decide(st, big)
    assert j.kind is Kind.PLACED and len(j.paths) == 2
    assert not st.apply(j).over_reserved()


def _all_pairs(topo: Topology) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float]]:
    """Shortest latency between all sites (Floyd–Warshall) and the cost per Mbps of that path,
    computed here from the topology alone."""
    ids = sorted(topo.sites)
    inf = float("inf")
    lat = {(a, b): (0.0 if a == b else inf) for a in ids for b in ids}
    cost = {(a, b): 0.0 for a in ids for b in ids}
    for ln in topo.links.values():
        for a, b in ((ln.a, ln.b), (ln.b, ln.a)):
            if ln.latency_ms < lat[a, b]:
                lat[a, b], cost[a, b] = ln.latency_ms, ln.cost_per_mbps
    for k in ids:
        for a in ids:
            for b in ids:
                if lat[a, k] + lat[k, b] < lat[a, b] - 1e-12:
                    lat[a, b] = lat[a, k] + lat[k, b]
                    cost[a, b] = cost[a, k] + cost[k, b]
    return lat, cost


@pytest.mark.parametrize("seed", range(12))
def test_pla_is_exact_against_enumeration(seed: int) -> None:
    """PLA's tensor solve finds the optimum (price, then Mbps x latency) of an exhaustive
    enumeration of every assignment, on random federations part-filled by earlier workloads."""
    from itertools import product

    from tandem.engine.baselines import pla_place
    from tandem.engine.decide import DEFAULT, Solver
    from tandem.engine.workgen import generate

    from joint_fixtures import random_topology

    topo = random_topology(seed, n=6)
    lat, cost = _all_pairs(topo)
    st = State.empty(topo)
    checked = 0
    for req in generate(topo, 30, seed, net=st.net):
        solver = Solver(st, req, DEFAULT)
        cands = solver.candidates()
        got = pla_place(solver)
        if isinstance(cands, tuple):
            assert isinstance(got[0], str)
            continue
        ids = st.net.site_ids
        best: tuple[float, float] | None = None
        for combo in product(*cands):
            sites = [ids[s] for s in combo]
            if any(len({sites[req.groups.index(req.group(g))] for g in aa}) < len(aa)
                   for aa in req.rules.anti_affinity):
                continue
            used: dict[str, list[float]] = {}
            for g, s in zip(req.groups, sites):
                u = used.setdefault(s, [0.0, 0.0, 0.0])
                for i, x in enumerate(g.total):
                    u[i] += x
            if any(any(u[i] > st.site_free(s)[i] + 1e-6 for i in range(3))
                   for s, u in used.items()):
                continue
            price = sum(g.count * g.vcpus * topo.sites[s].cost_per_vcpu_hour
                        for g, s in zip(req.groups, sites))
            wl, ok = 0.0, True
            for d in req.demands:
                a = sites[[g.group_id for g in req.groups].index(d.from_group)]
                b = (sites[[g.group_id for g in req.groups].index(d.to_group)]
                     if d.to_group else d.to_site)
                if lat[a, b] == float("inf") or (
                        d.max_latency_ms > 0 and lat[a, b] > d.max_latency_ms + 1e-9):
                    ok = False
                    break
                price += d.bandwidth_mbps * cost[a, b]
                wl += d.bandwidth_mbps * lat[a, b]
            if ok and (best is None or price < best[0] - 1e-9
                       or (abs(price - best[0]) <= 1e-9 and wl < best[1] - 1e-9)):
                best = (price, wl)
        if best is None:
            assert isinstance(got[0], str), (req.workload_id, got)
            continue
        assert not isinstance(got[0], str), (req.workload_id, got, best)
        sites = [ids[int(s)] for s in got]
        price = sum(g.count * g.vcpus * topo.sites[s].cost_per_vcpu_hour
                    for g, s in zip(req.groups, sites))
        wl = 0.0
        for d in req.demands:
            a = sites[[g.group_id for g in req.groups].index(d.from_group)]
            b = (sites[[g.group_id for g in req.groups].index(d.to_group)]
                 if d.to_group else d.to_site)
            price += d.bandwidth_mbps * cost[a, b]
            wl += d.bandwidth_mbps * lat[a, b]
        assert price == pytest.approx(best[0], abs=1e-6) and wl == pytest.approx(best[1], abs=1e-6)
        checked += 1
        dec = decide_pla_cspf(st, req)
        st = st.apply(dec)  # fill the federation: later requests see less compute
    assert checked >= 5
