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
