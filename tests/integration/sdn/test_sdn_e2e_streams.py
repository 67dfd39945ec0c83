"""The whole loop on real parts: an order through Kafka to the decider, its steps carried out
by the executor on the acknowledgements of the sites' compute units (simulated hypervisors) and
SDN units (real Open vSwitch), flows and meters matching the workload's own address block,
traffic from the workload's VM address through them; then a real port going down, the units'
link-state event, the decider's reaction, and the executor reprogramming the switches
make-before-break — no stand-in anywhere but the hypervisor."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from e2e_util import (decisions, flows_of, phase, start_compute, stop_all,
                      stream_processors, until_flows)
from itest_wait import until
from tandem.sdn.wanhosts import BlockAddresses, entries_of, run_flow, sh

from tandem.events import new_meta
from tandem.streams import topics as T
from tandem.v1 import decision_pb2
from tandem.v1 import workload_pb2 as W

pytestmark = pytest.mark.integration

RING = Path(__file__).resolve().parent / "ring5.json"
HOST_WAW = "10.77.5.1"


async def test_order_to_flows_and_link_failure_to_reroute(wan: dict[str, Any], units: Any,
                                                          kafka_bootstrap: str, sdn_prefix: str,
                                                          tmp_path: Path) -> None:
    prefix = sdn_prefix
    computes = [start_compute(kafka_bootstrap, prefix, site, tmp_path) for site in wan["sites"]]
    async with stream_processors(kafka_bootstrap, prefix, tmp_path) as app:
        try:
            await _whole_loop(app, wan, kafka_bootstrap, prefix)
        finally:
            stop_all(computes)


async def _whole_loop(app: Any, wan: dict[str, Any], kafka_bootstrap: str, prefix: str) -> None:
    from aiokafka import AIOKafkaProducer

    from tandem.engine.loaders import load_topology
    from tandem.sdn.publish import _publish

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    veth = wan["links"]["ams--ber"]["veth_a"]
    rids: list[str] = []
    addresses = BlockAddresses(wan)
    try:
        await _publish(kafka_bootstrap, load_topology(RING), wan, prefix)
        await until(lambda: app.decider.decider is not None
                    and len(app.decider.decider.topology.links) >= 5,
                    "the decider to see the WAN's inventory")
        order = W.RequestEvent(meta=new_meta("test"), request_id="e2e-1", place=W.WorkloadRequest(
            tenant="t", workload_id="uplink",
            groups=[W.VmGroup(group_id="app", count=1, vcpus=2, memory_gib=4)],
            demands=[W.TrafficDemand(demand_id="feed", from_group="app", to_site="waw",
                                     bandwidth_mbps=8, max_latency_ms=40)],
            rules=W.Rules(vm_jurisdictions=["NL"])))
        await producer.send_and_wait(f"{prefix}{T.REQUESTS_BASE}", key=b"uplink",
                                     value=order.SerializeToString())
        [placed] = await decisions(kafka_bootstrap, prefix, lambda d: d.request_id == "e2e-1")
        assert placed.kind == decision_pb2.DECISION_KIND_PLACED, placed
        [path] = placed.paths
        rids.append(path.reservation_id)
        assert list(path.link_ids) == ["ams--ber", "ber--waw"]  # the short way round
        # Carried out step by step on the units' acknowledgements: VM, transit/egress, ingress.
        assert await phase(kafka_bootstrap, prefix, "uplink",
                           decision_pb2.WORKLOAD_PHASE_ACTIVE, placed.revision)
        for site in ("ams", "ber", "waw"):
            await until_flows(wan["sites"][site]["bridge"], path.reservation_id, 0)
        meters = sh("ovs-ofctl", "-O", "OpenFlow13", "dump-meters", wan["sites"]["ams"]["bridge"])
        assert "rate=8000" in meters
        vm = next(c for s_ in placed.steps for c in s_.compute)
        block = next(c.install.match.ipv4_src for s_ in placed.steps for c in s_.sdn)
        assert vm.ipv4_address and block.endswith("/24")
        addresses.source("ams", vm.ipv4_address, block, "waw")
        res = await asyncio.to_thread(run_flow, "tdm-ams", "tdm-waw", HOST_WAW, 4, 2,
                                      src_ip=vm.ipv4_address)
        assert res["recv"]["bytes"] >= 0.95 * res["sent"]["sent_bytes"]

        # A real port goes down: the control units report it, the decider reacts, the
        # executor installs the new path, switches over, then removes the old one.
        sh("ip", "link", "set", veth, "down")
        moved = await decisions(kafka_bootstrap, prefix,
                                lambda d: d.workload_id == "uplink"
                                and d.kind == decision_pb2.DECISION_KIND_REROUTED, 45)
        assert moved, "no reroute decision after the link went down"
        [new] = moved[0].paths
        rids.append(new.reservation_id)
        assert list(new.link_ids) == ["ams--par", "par--vie", "vie--waw"]
        assert [s_.what for s_ in moved[0].steps] == [
            "install new paths (transit and egress)", "switch over at the ingress",
            "remove old paths"]
        assert await phase(kafka_bootstrap, prefix, "uplink",
                           decision_pb2.WORKLOAD_PHASE_ACTIVE, moved[0].revision)
        assert not flows_of(wan["sites"]["ber"]["bridge"], path.reservation_id, 0)
        for site in ("ams", "par", "vie", "waw"):
            await until_flows(wan["sites"][site]["bridge"], new.reservation_id, 1)
        res = await asyncio.to_thread(run_flow, "tdm-ams", "tdm-waw", HOST_WAW, 4, 2,
                                      src_ip=vm.ipv4_address)
        assert res["recv"]["bytes"] >= 0.95 * res["sent"]["sent_bytes"]
    finally:
        sh("ip", "link", "set", veth, "up")
        release = W.RequestEvent(meta=new_meta("test"), request_id="e2e-release",
                                 release=W.ReleaseRequest(workload_id="uplink"))
        await producer.send_and_wait(f"{prefix}{T.REQUESTS_BASE}", key=b"uplink",
                                     value=release.SerializeToString())
        [rel] = await decisions(kafka_bootstrap, prefix,
                                lambda d: d.request_id == "e2e-release")
        await phase(kafka_bootstrap, prefix, "uplink", decision_pb2.WORKLOAD_PHASE_RELEASED,
                    rel.revision)
        addresses.remove()
        # The removals reach every switch before the next test starts.
        await until(lambda: not any(entries_of(site["bridge"], rid)
                                    for site in wan["sites"].values() for rid in rids),
                    "the released reservation's entries to go", every=0.2)
        await producer.stop()
