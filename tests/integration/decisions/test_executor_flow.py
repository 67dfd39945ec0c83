"""Decisions become actions: the executor carries them out on the units' acknowledgements.

Real `tandem worker` processes and real `tandem compute --driver sim` units (one per site), on
the real broker. Workloads without WAN traffic need only compute steps, so these tests need no
switches (the SDN side is tested on Open vSwitch in tests/integration/sdn/)."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path

from test_worker_failover import app_id, start_worker, stop  # type: ignore[import-not-found]

from conftest import Bus  # type: ignore[import-not-found]
from tandem.events import new_meta
from tandem.services.compute.procs import start_unit
from tandem.services.demo_data import demo_federation
from tandem.streams import topics as T
from tandem.v1 import commands_pb2, decision_pb2 as D, workload_pb2 as W

SITES = [ev.site.site_id for ev in demo_federation() if ev.HasField("site")]


def start_compute(bus: Bus, site: str, tmp: Path, fail: str = "") -> subprocess.Popen[bytes]:
    return start_unit(site, bus.bootstrap, bus.prefix, tmp, fail=fail)


def order(rid: str, wid: str, vms: int = 2) -> W.RequestEvent:
    return W.RequestEvent(meta=new_meta("test"), request_id=rid, place=W.WorkloadRequest(
        tenant="acme", workload_id=wid, priority=W.PRIORITY_CLASS_STANDARD,
        groups=[W.VmGroup(group_id="app", count=vms, vcpus=1, memory_gib=2)],
        rules=W.Rules(vm_jurisdictions=["NL"])))


async def phases(bus: Bus, wid: str, until: int, timeout: float = 90.0) -> list[int]:
    got = await bus.wait_read(bus.name(T.WORKLOAD_STATUS_BASE), D.WorkloadStatus,
                              lambda ss: any(s.workload_id == wid and s.phase == until
                                             for s in ss), timeout)
    return [s.phase for s in got if s.workload_id == wid]


async def test_a_workload_becomes_active_then_released_through_its_units(
        bus: Bus, tmp_path: Path) -> None:
    worker = start_worker(bus.bootstrap, bus.prefix, tmp_path, "w")
    units = [start_compute(bus, s, tmp_path) for s in SITES]
    try:
        await bus.inventory()
        await bus.send(T.REQUESTS_BASE, order("r1", "w1"), b"w1")
        seen = await phases(bus, "w1", D.WORKLOAD_PHASE_ACTIVE)
        assert seen[:2] == [D.WORKLOAD_PHASE_DECIDED, D.WORKLOAD_PHASE_PROVISIONING]
        acks = await bus.read(bus.name(T.COMPUTE_ACKS_BASE), commands_pb2.ComputeAck)
        # two VMs created (powered off), then powered on once connected
        assert sorted(a.command_id.split("/")[0] for a in acks) == ["create"] * 2 + [
            "power_on"] * 2
        assert all(a.status == commands_pb2.ACK_STATUS_OK for a in acks)
        assert all(a.addresses and a.addresses[0].startswith("10.") for a in acks)
        release = W.RequestEvent(meta=new_meta("test"), request_id="r2",
                                 release=W.ReleaseRequest(workload_id="w1"))
        await bus.send(T.REQUESTS_BASE, release, b"w1")
        seen = await phases(bus, "w1", D.WORKLOAD_PHASE_RELEASED)
        await bus.settled(app_id(bus.prefix), (T.DECISIONS_BASE, T.SDN_ACKS_BASE,
                                               T.COMPUTE_ACKS_BASE), loop="executor")
        commands: Counter[str] = Counter()
        for site in SITES:
            for r in await bus.read(T.compute_commands_topic(site, bus.prefix),
                                    commands_pb2.ComputeCommand):
                commands[r.command_id] += 1
        # 2 created, 2 powered on, 2 deleted: each sent once
        assert len(commands) == 6 and set(commands.values()) == {1}, commands
    finally:
        stop(worker, signal.SIGTERM)
        for u in units:
            stop(u, signal.SIGTERM)


async def test_a_refused_step_is_undone_and_the_reservation_returned(
        bus: Bus, tmp_path: Path) -> None:
    worker = start_worker(bus.bootstrap, bus.prefix, tmp_path, "w")
    # The only NL site refuses the second VM.
    units = [start_compute(bus, s, tmp_path, fail="w2-app-1" if s == "ams" else "")
             for s in SITES]
    try:
        await bus.inventory()
        await bus.send(T.REQUESTS_BASE, order("r1", "w2"), b"w2")
        seen = await phases(bus, "w2", D.WORKLOAD_PHASE_ROLLED_BACK)
        assert D.WORKLOAD_PHASE_FAILED in seen and D.WORKLOAD_PHASE_ACTIVE not in seen
        statuses = await bus.read(bus.name(T.WORKLOAD_STATUS_BASE), D.WorkloadStatus)
        failed = next(s for s in statuses if s.phase == D.WORKLOAD_PHASE_FAILED)
        assert "w2-app-1" in failed.reason and "refused" in failed.reason
        decisions = await bus.read(bus.name(T.DECISIONS_BASE), D.Decision)
        assert [d.kind for d in decisions if d.workload_id == "w2"] == [
            D.DECISION_KIND_PLACED, D.DECISION_KIND_ROLLED_BACK]
        # The VM that was created is deleted again; the decider's capacity is back: the
        # same order, without the fault, fits where it did.
        acks = await bus.read(bus.name(T.COMPUTE_ACKS_BASE), commands_pb2.ComputeAck)
        assert any(a.command_id.startswith("undo/") for a in acks)
        stop(units[SITES.index("ams")], signal.SIGTERM)
        units[SITES.index("ams")] = start_compute(bus, "ams", tmp_path)
        await bus.send(T.REQUESTS_BASE, order("r2", "w2"), b"w2")
        await phases(bus, "w2", D.WORKLOAD_PHASE_ACTIVE)
    finally:
        stop(worker, signal.SIGTERM)
        for u in units:
            stop(u, signal.SIGTERM)


async def test_an_executor_killed_between_steps_resumes_and_sends_no_step_twice(
        bus: Bus, tmp_path: Path) -> None:
    first = start_worker(bus.bootstrap, bus.prefix, tmp_path, "first",
                         failpoints="executor:tandem.compute.acks:after_send:1")
    units = [start_compute(bus, s, tmp_path) for s in SITES]
    second = None
    try:
        await bus.inventory()
        for i in range(4):
            await bus.send(T.REQUESTS_BASE, order(f"r{i}", f"k{i}"), f"k{i}".encode())
        assert first.wait(120) == 137, "the failpoint was not reached"
        second = start_worker(bus.bootstrap, bus.prefix, tmp_path, "second")
        for i in range(4):
            await phases(bus, f"k{i}", D.WORKLOAD_PHASE_ACTIVE)
        await bus.settled(app_id(bus.prefix), (T.DECISIONS_BASE, T.SDN_ACKS_BASE,
                                               T.COMPUTE_ACKS_BASE), loop="executor")
        commands: Counter[str] = Counter()
        for site in SITES:
            for r in await bus.read(T.compute_commands_topic(site, bus.prefix),
                                    commands_pb2.ComputeCommand):
                commands[r.command_id] += 1
        assert len(commands) == 16 and set(commands.values()) == {1}, commands  # 4 × (2+2)
    finally:
        stop(first, signal.SIGKILL)
        if second is not None:
            stop(second, signal.SIGTERM)
        for u in units:
            stop(u, signal.SIGTERM)
