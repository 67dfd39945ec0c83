"""VMs in the executor's plan, on real parts: an order through Kafka to the decider; the
executor creates the VMs (powered off) on a vCenter simulator through each site's compute unit
(`tandem compute --driver vsphere`, one cluster per site), programs the reserved path on Open
vSwitch through the sites' SDN units, switches the ingress over, powers the VMs on. govc
checks, from outside, that the VMs are where the decision put them; traffic from a VM's
address crosses the reserved path. Then a fault at each step — vCenter refusing, vCenter
killed, a switch refusing a flow at a transit site and at the ingress — ends rolled back with
no VM, no flow and no reservation left; duplicated commands change nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_util import (decisions, phase, start_compute, stop_all,
                      stream_processors, until_flows)
from itest_wait import until
from sdn_itest_util import collect
from tandem.sdn.wanhosts import BlockAddresses, dump_meters, entries_of, run_flow, sh
from vcsim_util import Vcsim, free_port, govc, observe, vcsimctl, vm_paths

from tandem.events import new_meta
from tandem.services.compute.vsphere import VsphereConfig
from tandem.streams import topics as T
from tandem.v1 import commands_pb2, decision_pb2 as D
from tandem.v1 import workload_pb2 as W

pytestmark = pytest.mark.integration

RING = Path(__file__).resolve().parent / "ring5.json"
SITES = ("ams", "ber", "par", "vie", "waw")  # site i runs on cluster DC0_C<i>
HOST_WAW = "10.77.5.1"
RETRY_S = 6.0  # how long a compute unit outwaits an unreachable vCenter here
PLAN = ["create VMs", "install new paths (transit and egress)", "switch over at the ingress",
        "power VMs on"]


def site_config(vc: Vcsim, site: str) -> VsphereConfig:
    return vc.config(cluster=f"DC0_C{SITES.index(site)}", folder=f"site-{site}", timeout_s=5.0,
                     task_timeout_s=30.0)


def unit_env(cfg: VsphereConfig) -> dict[str, str]:
    return {"TANDEM_VSPHERE_URL": cfg.url, "TANDEM_VSPHERE_USER": cfg.user,
            "TANDEM_VSPHERE_PASSWORD": cfg.password, "TANDEM_VSPHERE_CA_FILE": cfg.ca_file,
            "TANDEM_VSPHERE_DATACENTER": cfg.datacenter, "TANDEM_VSPHERE_CLUSTER": cfg.cluster,
            "TANDEM_VSPHERE_FOLDER": cfg.folder, "TANDEM_VSPHERE_TIMEOUT_S": "5",
            "TANDEM_VSPHERE_TASK_TIMEOUT_S": "30"}


@pytest.fixture(scope="module")
def vc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vcsim]:
    """A simulator of our own (five clusters, a fixed port so a restart comes back there)."""
    got = vcsimctl("govc")
    if got.returncode != 0:
        pytest.fail(f"govc is not available:\n{got.stdout}{got.stderr}", pytrace=False)
    inst = Vcsim(tmp_path_factory.mktemp("vcsim"), free_port(), "-cluster 5")
    try:
        inst.up()
    except AssertionError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield inst
    inst.down()


@pytest.fixture(scope="module")
def computes(vc: Vcsim, units: Any, kafka_bootstrap: str, sdn_prefix: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One vSphere compute unit per site, each driving its own cluster of the simulator;
    yields the directory of their logs."""
    logs = tmp_path_factory.mktemp("compute")
    procs = [start_compute(kafka_bootstrap, sdn_prefix, site, logs, "vsphere",
                           unit_env(site_config(vc, site)), retry_s=RETRY_S) for site in SITES]
    yield logs
    stop_all(procs)


@pytest.fixture
async def loop_(wan: dict[str, Any], computes: Path, kafka_bootstrap: str, sdn_prefix: str,
                tmp_path: Path) -> AsyncIterator[Any]:
    """The stream processors, the WAN's inventory published, and a producer for orders."""
    from aiokafka import AIOKafkaProducer

    from tandem.engine.loaders import load_topology
    from tandem.sdn.publish import _publish

    async with stream_processors(kafka_bootstrap, sdn_prefix, tmp_path) as app:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            await _publish(kafka_bootstrap, load_topology(RING), wan, sdn_prefix)
            await until(lambda: app.decider.decider is not None
                        and len(app.decider.decider.topology.links) >= 5,
                        "the decider to see the WAN's inventory")
            app.meters_before = {site: dump_meters(s["bridge"])
                                 for site, s in wan["sites"].items()}
            yield app, producer
        finally:
            await producer.stop()


def order(wid: str) -> W.RequestEvent:
    return W.RequestEvent(meta=new_meta("test"), request_id=f"{wid}-order",
                          place=W.WorkloadRequest(
        tenant="t", workload_id=wid,
        groups=[W.VmGroup(group_id="app", count=2, vcpus=2, memory_gib=4)],
        demands=[W.TrafficDemand(demand_id="feed", from_group="app", to_site="waw",
                                 bandwidth_mbps=8, max_latency_ms=40)],
        rules=W.Rules(vm_jurisdictions=["NL"])))


async def place(producer: Any, bootstrap: str, prefix: str, wid: str) -> D.Decision:
    await producer.send_and_wait(f"{prefix}{T.REQUESTS_BASE}", key=wid.encode(),
                                 value=order(wid).SerializeToString())
    [placed] = await decisions(bootstrap, prefix, lambda d: d.request_id == f"{wid}-order")
    assert placed.kind == D.DECISION_KIND_PLACED, placed
    assert [s.what for s in placed.steps] == PLAN
    assert list(placed.paths[0].link_ids) == ["ams--ber", "ber--waw"]
    return placed


def vm_names(d: D.Decision) -> list[str]:
    return sorted(c.vm.vm_name for c in d.steps[0].compute)


async def nothing_left(app: Any, vc: Vcsim, wan: dict[str, Any], *ds: D.Decision) -> None:
    """No VM anywhere in vCenter, no entry of the reservations on any switch, and the
    reservations returned to the engine (the decider holds no bandwidth and no workload)."""
    cfg = site_config(vc, "ams")
    d = ds[0]
    for name in vm_names(d):
        assert vm_paths(cfg, name) == [], f"orphan VM {name}"
    rids = {p.reservation_id for x in ds for p in x.paths}
    await until(lambda: not any(entries_of(s["bridge"], rid) for s in wan["sites"].values()
                                for rid in rids),
                "the reservations' entries to be gone from every switch", every=0.2)
    for site, s in wan["sites"].items():  # a refused install may have left its meter
        assert dump_meters(s["bridge"]) == app.meters_before[site], f"meters left on {site}"
    state = app.decider.decider.state  # None: no workload at all (compiled on the next order)
    if state is not None:
        assert d.workload_id not in state.workloads
        assert max(abs(u) for u in state.used) < 1e-9, "bandwidth still reserved"


async def test_vms_where_decided_traffic_on_the_reserved_path_and_repeats_change_nothing(
        loop_: Any, vc: Vcsim, wan: dict[str, Any], kafka_bootstrap: str,
        sdn_prefix: str) -> None:
    app, producer = loop_
    prefix, wid = sdn_prefix, "vmw"
    placed = await place(producer, kafka_bootstrap, prefix, wid)
    assert await phase(kafka_bootstrap, prefix, wid, D.WORKLOAD_PHASE_ACTIVE, placed.revision)
    cfg = site_config(vc, "ams")
    for name in vm_names(placed):  # govc, from outside: in ams's cluster and folder, running
        assert vm_paths(cfg, name) == [f"/DC0/vm/site-ams/{name}"]
        seen = observe(cfg, name)
        assert seen is not None and seen.powered_on and seen.workload_id == wid
        assert seen.location == "DC0/DC0_C0/Resources"
    rid = placed.paths[0].reservation_id
    for site in ("ams", "ber", "waw"):
        await until_flows(wan["sites"][site]["bridge"], rid, 0)
    vm = placed.steps[0].compute[0]
    block = next(c.install.match.ipv4_src for s in placed.steps for c in s.sdn)
    addresses = BlockAddresses(wan)
    try:
        addresses.source("ams", vm.ipv4_address, block, "waw")
        res = await asyncio.to_thread(run_flow, "tdm-ams", "tdm-waw", HOST_WAW, 4, 2,
                                      src_ip=vm.ipv4_address)
        assert res["recv"]["bytes"] >= 0.95 * res["sent"]["sent_bytes"]
    finally:
        addresses.remove()

    # Every compute command of the decision once more, as a crash before the offset commit
    # would replay them: acknowledged NOOP, no twin, nothing powered off.
    again = [c for s in placed.steps for c in s.compute]
    for c in again:
        await producer.send_and_wait(T.compute_commands_topic(c.site_id, prefix),
                                     key=wid.encode(), value=c.SerializeToString())
    ids = {c.command_id for c in again}

    def repeats_acknowledged(acks: list[Any]) -> bool:
        return {a.command_id for a in acks if a.status == commands_pb2.ACK_STATUS_NOOP} >= ids

    seen_acks: list[Any] = []

    async def read_acks() -> bool:
        seen_acks[:] = await collect(kafka_bootstrap, f"{prefix}{T.COMPUTE_ACKS_BASE}",
                                     commands_pb2.ComputeAck,
                                     lambda a: a.workload_id == wid, timeout=2)
        return repeats_acknowledged(seen_acks)

    await until(read_acks, lambda: f"NOOP acks for {sorted(ids)}: {seen_acks}", 60, every=0.5)
    for name in vm_names(placed):
        seen = observe(cfg, name)
        assert seen is not None and seen.powered_on and len(vm_paths(cfg, name)) == 1

    await release_all(producer, kafka_bootstrap, prefix, wid)
    await nothing_left(app, vc, wan, placed)


class Fault:
    """One fault at one step of the plan: `arm` before the order, `disarm` after."""

    def __init__(self, vc: Vcsim, wan: dict[str, Any], units: Any) -> None:
        self.vc, self.wan, self.units = vc, wan, units

    def hosts(self) -> list[str]:
        cfg = site_config(self.vc, "ams")
        return [p for p in govc(cfg, "find", "/", "-type", "h").split() if "DC0_C0_H" in p]

    def maintenance(self, enter: bool) -> None:
        for h in self.hosts():
            govc(site_config(self.vc, "ams"), f"host.maintenance.{'enter' if enter else 'exit'}",
                 h)

    def table_full(self, site: str, full: bool) -> None:
        """The switch's table 0 refuses any new entry (OFPFMFC_TABLE_FULL), as a switch whose
        flow table is full does."""
        br = self.wan["sites"][site]["bridge"]
        if full:
            n = len([l for l in sh("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", br,
                                   "table=0").splitlines() if "cookie=" in l])
            sh("ovs-vsctl", "--", "--id=@ft", "create", "Flow_Table", f"flow_limit={n}",
               "overflow_policy=refuse", "--", "set", "Bridge", br, "flow_tables:0=@ft")
        else:
            sh("ovs-vsctl", "clear", "Bridge", br, "flow_tables")

    def sdn_unit(self, site: str, sig: int) -> None:
        os.kill(self.units.procs[site].pid, sig)


FAULTS = {
    # step: (what is broken, what the failure must name)
    "create: vCenter refuses (hosts in maintenance)": ("create/", "does not fit in cluster"),
    "create: vCenter killed": ("create/", "unreachable (ConnectionRefusedError"),
    "install: transit switch refuses": ("install/", "ber"),
    "switch-over: ingress switch refuses": ("install/", "ams"),
    "power on: vCenter error (InvalidState)": ("power_on/", "InvalidState"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_fault_at_each_step_rolls_back_leaving_nothing(
        fault: str, loop_: Any, vc: Vcsim, wan: dict[str, Any], units: Any,
        kafka_bootstrap: str, sdn_prefix: str) -> None:
    app, producer = loop_
    prefix = sdn_prefix
    wid = "f" + str(list(FAULTS).index(fault))
    f = Fault(vc, wan, units)
    stopped = False
    try:
        if fault.startswith("create: vCenter refuses"):
            f.maintenance(True)
        elif fault.startswith("create: vCenter killed"):
            os.kill(vc.pid, signal.SIGKILL)
        elif fault.startswith("install"):
            f.table_full("ber", True)
        elif fault.startswith("switch-over"):
            f.table_full("ams", True)
        else:  # hold the plan after its first step (the transit unit paused), then break vCenter
            f.sdn_unit("ber", signal.SIGSTOP)
            stopped = True
        placed = await place(producer, kafka_bootstrap, prefix, wid)
        if stopped:
            assert await collect(kafka_bootstrap, f"{prefix}{T.WORKLOAD_STATUS_BASE}",
                                 D.WorkloadStatus,
                                 lambda s: s.workload_id == wid and s.steps_done == 1, 60)
            f.maintenance(True)
            f.sdn_unit("ber", signal.SIGCONT)
            stopped = False
        if fault.startswith("create: vCenter killed"):
            # The unit outwaits vCenter for RETRY_S, then the create fails; vCenter comes
            # back, so the undo and the rolled-back decision's deletes can land (a vCenter
            # gone for good leaves the rollback FAILED with a CRITICAL alarm: nothing is
            # pretended done).
            assert await phase(kafka_bootstrap, prefix, wid, D.WORKLOAD_PHASE_FAILED,
                               placed.revision)
            vc.up()
        assert await collect(kafka_bootstrap, f"{prefix}{T.WORKLOAD_STATUS_BASE}",
                             D.WorkloadStatus, lambda s: s.workload_id == wid
                             and s.phase == D.WORKLOAD_PHASE_ROLLED_BACK, 120), "not rolled back"
        [failed] = await phase(kafka_bootstrap, prefix, wid, D.WORKLOAD_PHASE_FAILED,
                               placed.revision)
        step, words = FAULTS[fault]
        assert step in failed.reason and words in failed.reason, failed.reason
        kinds = [d.kind for d in await decisions(kafka_bootstrap, prefix,
                                                 lambda d: d.workload_id == wid)]
        assert kinds == [D.DECISION_KIND_PLACED, D.DECISION_KIND_ROLLED_BACK]
    finally:
        if stopped:
            f.sdn_unit("ber", signal.SIGCONT)
        if fault.startswith("create: vCenter killed"):
            vc.up()  # the same port (a no-op when it is up); the units log in again
        elif "maintenance" in fault or fault.startswith("power on"):
            f.maintenance(False)
        elif fault.startswith("install"):
            f.table_full("ber", False)
        elif fault.startswith("switch-over"):
            f.table_full("ams", False)
    await nothing_left(app, vc, wan, placed)


async def test_a_vcenter_killed_and_back_within_the_retry_time_is_outwaited(
        loop_: Any, vc: Vcsim, wan: dict[str, Any], computes: Path, kafka_bootstrap: str,
        sdn_prefix: str) -> None:
    """vCenter dies before the VMs are created and comes back while the unit still tries:
    no rollback, the workload becomes active, each VM once."""
    app, producer = loop_
    prefix, wid = sdn_prefix, "back"
    os.kill(vc.pid, signal.SIGKILL)
    try:
        placed = await place(producer, kafka_bootstrap, prefix, wid)
        log = computes / "compute-ams.log"
        await until(lambda: f"create/{wid}-app-0/" in log.read_text()
                    and "hypervisor unreachable" in log.read_text().split(
                        f"create/{wid}-app-0/", 1)[1],
                    "the ams unit to find vCenter unreachable and keep trying", every=0.1)
    finally:
        vc.up()
    assert await phase(kafka_bootstrap, prefix, wid, D.WORKLOAD_PHASE_ACTIVE, placed.revision)
    cfg = site_config(vc, "ams")
    for name in vm_names(placed):
        seen = observe(cfg, name)  # observe fails on twins
        assert seen is not None and seen.powered_on
    await release_all(producer, kafka_bootstrap, prefix, wid)
    await nothing_left(app, vc, wan, placed)


def moid(cfg: VsphereConfig, name: str) -> str:
    """The VM's managed object id, read by govc (a relocation keeps it, a re-creation not)."""
    [path] = vm_paths(cfg, name)
    return str(json.loads(govc(cfg, "vm.info", "-json", path))["VirtualMachines"][0]["Self"][
        "Value"])


def mover(wid: str) -> W.RequestEvent:
    """VMs allowed in NL or DE, traffic to vie within 15 ms: placed at ams (ams-par-vie, 14
    ms); with ams--par down no path from ams fits (ams-ber-waw-vie, 17 ms), so the VM must
    move to ber (ber-waw-vie, 11 ms)."""
    return W.RequestEvent(meta=new_meta("test"), request_id=f"{wid}-order",
                          place=W.WorkloadRequest(
        tenant="t", workload_id=wid,
        groups=[W.VmGroup(group_id="app", count=1, vcpus=2, memory_gib=4)],
        demands=[W.TrafficDemand(demand_id="feed", from_group="app", to_site="vie",
                                 bandwidth_mbps=8, max_latency_ms=15)],
        rules=W.Rules(vm_jurisdictions=["NL", "DE"])))


async def place_mover(producer: Any, bootstrap: str, prefix: str, wid: str,
                      vc: Vcsim) -> tuple[D.Decision, str]:
    await producer.send_and_wait(f"{prefix}{T.REQUESTS_BASE}", key=wid.encode(),
                                 value=mover(wid).SerializeToString())
    [placed] = await decisions(bootstrap, prefix, lambda d: d.request_id == f"{wid}-order")
    assert [(p.group_id, p.site_id) for p in placed.placements] == [("app", "ams")], placed
    assert list(placed.paths[0].link_ids) == ["ams--par", "par--vie"]
    assert await phase(bootstrap, prefix, wid, D.WORKLOAD_PHASE_ACTIVE, placed.revision)
    [name] = vm_names(placed)
    cfg = site_config(vc, "ams")
    assert vm_paths(cfg, name) == [f"/DC0/vm/site-ams/{name}"]
    return placed, moid(cfg, name)


async def release_all(producer: Any, bootstrap: str, prefix: str, wid: str) -> None:
    release = W.RequestEvent(meta=new_meta("test"), request_id=f"{wid}-release",
                             release=W.ReleaseRequest(workload_id=wid))
    await producer.send_and_wait(f"{prefix}{T.REQUESTS_BASE}", key=wid.encode(),
                                 value=release.SerializeToString())
    [rel] = await decisions(bootstrap, prefix, lambda d: d.request_id == f"{wid}-release")
    assert await phase(bootstrap, prefix, wid, D.WORKLOAD_PHASE_RELEASED, rel.revision, 90)


async def test_a_migration_relocates_the_vm_up_and_connected_before_the_old_site_lets_go(
        loop_: Any, vc: Vcsim, wan: dict[str, Any], kafka_bootstrap: str,
        sdn_prefix: str) -> None:
    app, producer = loop_
    prefix, wid = sdn_prefix, "mig"
    placed, ref = await place_mover(producer, kafka_bootstrap, prefix, wid, vc)
    [name] = vm_names(placed)
    veth = wan["links"]["ams--par"]["veth_a"]
    moved: list[Any] = []
    try:
        sh("ip", "link", "set", veth, "down")
        moved = await decisions(kafka_bootstrap, prefix, lambda d: d.workload_id == wid
                                and d.kind in (D.DECISION_KIND_MIGRATED,
                                               D.DECISION_KIND_REROUTED_AND_MIGRATED), 45)
        assert moved, "no migration after ams--par went down"
        m = moved[0]
        assert [(p.group_id, p.site_id) for p in m.placements] == [("app", "ber")]
        assert [s.what for s in m.steps][:5] == [
            "create VMs", "install new paths (transit and egress)",
            "switch over at the ingress", "power VMs on", "migrate VMs out"]
        assert await phase(kafka_bootstrap, prefix, wid, D.WORKLOAD_PHASE_ACTIVE, m.revision)
        ber = site_config(vc, "ber")
        assert vm_paths(ber, name) == [f"/DC0/vm/site-ber/{name}"]  # one copy, moved
        assert moid(ber, name) == ref, "re-created, not relocated"
        seen = observe(ber, name)
        assert seen is not None and seen.powered_on and seen.location == "DC0/DC0_C1/Resources"
        for site in ("ber", "waw", "vie"):
            await until_flows(wan["sites"][site]["bridge"], m.paths[0].reservation_id,
                              m.revision)
    finally:
        sh("ip", "link", "set", veth, "up")
    await release_all(producer, kafka_bootstrap, prefix, wid)
    await nothing_left(app, vc, wan, placed, *moved)


async def test_a_failed_migration_moves_the_same_vm_back_and_deletes_nothing_it_needs(
        loop_: Any, vc: Vcsim, wan: dict[str, Any], units: Any, kafka_bootstrap: str,
        sdn_prefix: str) -> None:
    """The new path's transit switch refuses its entry after the VM was relocated to ber:
    the undo relocates it back to ams (the same VM, running) before anything is deleted at
    ber, and the workload is rolled back to its old placement."""
    app, producer = loop_
    prefix, wid = sdn_prefix, "migfail"
    placed, ref = await place_mover(producer, kafka_bootstrap, prefix, wid, vc)
    [name] = vm_names(placed)
    veth = wan["links"]["ams--par"]["veth_a"]
    f = Fault(vc, wan, units)
    moved: list[Any] = []
    try:
        f.table_full("waw", True)
        sh("ip", "link", "set", veth, "down")
        moved = await decisions(kafka_bootstrap, prefix, lambda d: d.workload_id == wid
                                and d.kind in (D.DECISION_KIND_MIGRATED,
                                               D.DECISION_KIND_REROUTED_AND_MIGRATED), 45)
        assert moved, "no migration after ams--par went down"
        [failed] = await phase(kafka_bootstrap, prefix, wid, D.WORKLOAD_PHASE_FAILED,
                               moved[0].revision)
        assert "install/" in failed.reason and "waw" in failed.reason, failed.reason
        assert await collect(kafka_bootstrap, f"{prefix}{T.WORKLOAD_STATUS_BASE}",
                             D.WorkloadStatus, lambda s: s.workload_id == wid
                             and s.phase == D.WORKLOAD_PHASE_ROLLED_BACK, 90), "not rolled back"
        ams = site_config(vc, "ams")
        assert vm_paths(ams, name) == [f"/DC0/vm/site-ams/{name}"]  # back, one copy
        assert moid(ams, name) == ref, "the VM was deleted and re-created, not moved back"
        seen = observe(ams, name)
        assert seen is not None and seen.powered_on and seen.location == "DC0/DC0_C0/Resources"
    finally:
        f.table_full("waw", False)
        sh("ip", "link", "set", veth, "up")
    await release_all(producer, kafka_bootstrap, prefix, wid)
    await nothing_left(app, vc, wan, placed, *moved)
