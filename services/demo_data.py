"""The demo's federation and workloads (also used by tests as a small realistic fixture)."""

from __future__ import annotations

from tandem.events import new_meta
from tandem.v1 import common_pb2, inventory_pb2
from tandem.v1 import workload_pb2 as W

K = inventory_pb2


def demo_federation() -> list[inventory_pb2.InventoryEvent]:
    """Six sites in five jurisdictions joined by fibre, MPLS, a gateway LAN and a satellite."""
    sites = [
        ("ams", "Amsterdam", 52.37, 4.90, "NL", 512, 2048, ["vsphere", "kvm"], 0.031),
        ("fra", "Frankfurt", 50.11, 8.68, "DE", 768, 3072, ["vsphere"], 0.034),
        ("par", "Paris", 48.86, 2.35, "FR", 384, 1536, ["kvm"], 0.029),
        ("mil", "Milan", 45.46, 9.19, "IT", 256, 1024, ["vsphere", "kvm"], 0.027),
        ("zrh", "Zurich", 47.37, 8.54, "CH", 128, 512, ["vsphere"], 0.045),
        ("lon", "London", 51.51, -0.13, "GB", 640, 2560, ["vsphere", "kvm"], 0.038),
    ]
    links = [
        ("ams-fra", "ams", "fra", 10000, 6.1, K.LINK_KIND_FIBRE, ["NL", "DE"], 0.002),
        ("fra-par", "fra", "par", 5000, 7.9, K.LINK_KIND_MPLS, ["DE", "FR"], 0.004),
        ("par-lon", "par", "lon", 10000, 5.4, K.LINK_KIND_FIBRE, ["FR", "GB"], 0.002),
        ("lon-ams", "lon", "ams", 10000, 5.7, K.LINK_KIND_FIBRE, ["GB", "NL"], 0.002),
        ("fra-zrh", "fra", "zrh", 2000, 4.3, K.LINK_KIND_FIBRE, ["DE", "CH"], 0.003),
        ("zrh-mil", "zrh", "mil", 1000, 3.2, K.LINK_KIND_LAN_GATEWAY, ["CH", "IT"], 0.001),
        ("mil-par", "mil", "par", 200, 280.0, K.LINK_KIND_SATELLITE, ["IT", "FR"], 0.020),
    ]
    events: list[inventory_pb2.InventoryEvent] = []
    for sid, name, lat, lon, cc, vcpu, mem, hyp, cost in sites:
        site = K.Site(site_id=sid, name=name, jurisdiction=cc,
                      location=common_pb2.Location(latitude=lat, longitude=lon, city=name),
                      capacity=K.ComputeCapacity(vcpus=vcpu, memory_gib=mem, storage_gib=vcpu * 20),
                      hypervisors=hyp, cost_per_vcpu_hour=cost, state=K.SITE_STATE_ACTIVE)
        if cc not in ("CH", "GB"):
            site.jurisdiction_groups.extend(["EU", "EEA"])
        events.append(K.InventoryEvent(meta=new_meta("demo/inventory"), site=site))
    for lid, a, b, cap, lat_ms, kind, cross, cost in links:
        link = K.Link(link_id=lid, site_a=a, site_b=b, capacity_ab_mbps=cap,
                      capacity_ba_mbps=cap, latency_ms=lat_ms, kind=kind, jurisdictions=cross,
                      cost_per_mbps=cost, admin_state=K.ADMIN_STATE_ENABLED)
        events.append(K.InventoryEvent(meta=new_meta("demo/inventory"), link=link))
    return events


def _group(gid: str, count: int, vcpus: float, mem: float, hyp: str = "") -> W.VmGroup:
    return W.VmGroup(group_id=gid, count=count, vcpus=vcpus, memory_gib=mem, hypervisor=hyp)


def web_db_order(workload_id: str, tenant: str = "acme", bw: float = 300.0,
                 jurisdiction: str = "EU", priority: int = W.PRIORITY_CLASS_STANDARD,
                 vcpus: float = 4) -> W.WorkloadRequest:
    """Two web VMs and a database on different sites of `jurisdiction` joined by one demand:
    feasible on the demo federation for "EU", infeasible for "JP" (the tests' stock order)."""
    return W.WorkloadRequest(
        tenant=tenant, workload_id=workload_id, priority=priority,  # type: ignore[arg-type]
        groups=[_group("web", 2, vcpus, 8), _group("db", 1, vcpus, 16)],
        demands=[W.TrafficDemand(demand_id="d1", from_group="web", to_group="db",
                                 bandwidth_mbps=bw, max_latency_ms=30)],
        rules=W.Rules(vm_jurisdictions=[jurisdiction],
                      anti_affinity=[W.AntiAffinity(group_ids=["web", "db"])]))


def demo_requests() -> list[W.RequestEvent]:
    """Four orders: an EU web shop, a Swiss bank kept off non-CH/DE links, an analytics
    cluster feeding London, and one that cannot be placed (Japanese residency)."""
    shop = W.WorkloadRequest(
        tenant="retail", workload_id="shop", priority=W.PRIORITY_CLASS_STANDARD,
        groups=[_group("web", 4, 4, 8), _group("db", 2, 8, 64)],
        demands=[W.TrafficDemand(demand_id="web-db", from_group="web", to_group="db",
                                 bandwidth_mbps=1500, max_latency_ms=10),
                 W.TrafficDemand(demand_id="users-lon", from_group="web", to_site="lon",
                                 bandwidth_mbps=2500, max_latency_ms=25)],
        rules=W.Rules(vm_jurisdictions=["EU"], anti_affinity=[W.AntiAffinity(group_ids=["web", "db"])]))
    bank = W.WorkloadRequest(
        tenant="bank", workload_id="ledger", priority=W.PRIORITY_CLASS_CRITICAL,
        groups=[_group("core", 2, 16, 128, "vsphere")],
        demands=[W.TrafficDemand(demand_id="to-fra", from_group="core", to_site="fra",
                                 bandwidth_mbps=800, max_latency_ms=15, diverse=False)],
        rules=W.Rules(vm_jurisdictions=["CH"], transit_jurisdictions=["CH", "DE"]))
    analytics = W.WorkloadRequest(
        tenant="media", workload_id="analytics", priority=W.PRIORITY_CLASS_BEST_EFFORT,
        groups=[_group("ingest", 2, 8, 32), _group("spark", 6, 16, 64, "kvm")],
        demands=[W.TrafficDemand(demand_id="ingest-spark", from_group="ingest", to_group="spark",
                                 bandwidth_mbps=3000),
                 W.TrafficDemand(demand_id="report-lon", from_group="spark", to_site="lon",
                                 bandwidth_mbps=1200, max_latency_ms=30)],
        rules=W.Rules(vm_jurisdictions=["EU", "GB"]))
    tokyo = W.WorkloadRequest(
        tenant="retail", workload_id="tokyo-shop", priority=W.PRIORITY_CLASS_STANDARD,
        groups=[_group("web", 2, 4, 8)],
        rules=W.Rules(vm_jurisdictions=["JP"]))
    return [W.RequestEvent(meta=new_meta("demo/oss"), request_id=f"order-{i + 1}", place=req)
            for i, req in enumerate((shop, bank, analytics, tokyo))]
