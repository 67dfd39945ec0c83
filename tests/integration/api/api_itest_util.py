"""Helpers of the API integration tests: orders as the API takes them, the demo federation on
the broker, and reading the decisions topic back."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from itest_wait import until

from tandem.inventory import inventory_key
from tandem.services.demo_data import demo_federation
from tandem.streams import topics as T
from tandem.services.api.client import details_of
from tandem.services.compute.procs import start_unit, stop_units
from tandem.services.demo_data import web_db_order
from tandem.streams.readback import read_all_partitions, read_topic
from tandem.v1 import decider_pb2, decision_pb2
from tandem.v1 import workload_pb2 as W


def order(workload_id: str, tenant: str = "acme", bw: float = 300.0,
          jurisdiction: str = "EU") -> W.WorkloadRequest:
    """Feasible on the demo federation; jurisdiction "JP" makes it infeasible."""
    return web_db_order(workload_id, tenant, bw, jurisdiction)


async def publish_federation(bootstrap: str, prefix: str) -> int:
    """The demo federation on the inventory topic; returns once the decider log holds it."""
    events = demo_federation()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for ev in events:
            await producer.send_and_wait(T.SPECS[T.INVENTORY_BASE].name(prefix),
                                         key=inventory_key(ev).encode(),
                                         value=ev.SerializeToString())
    finally:
        await producer.stop()
    log = T.SPECS[T.DECIDER_BASE].name(prefix)

    async def folded() -> bool:
        got = [decider_pb2.DeciderInput.FromString(r.value) for r in await read_topic(bootstrap, log)]
        return sum(x.HasField("inventory") for x in got) >= len(events)

    await until(folded, "the inventory on the decider log", timeout=45)
    return len(events)


async def decisions(bootstrap: str, prefix: str) -> list[decision_pb2.Decision]:
    return [decision_pb2.Decision.FromString(r.value) for r in
            await read_all_partitions(bootstrap, T.SPECS[T.DECISIONS_BASE].name(prefix))]


async def decider_log_size(bootstrap: str, prefix: str) -> int:
    return len(await read_topic(bootstrap, T.SPECS[T.DECIDER_BASE].name(prefix)))


def details(err: Any) -> list[Any]:
    """The google.rpc.Status details of a failed call, unpacked."""
    return details_of(err)  # type: ignore[arg-type]


def compute_only(workload_id: str, tenant: str = "acme", vms: int = 2) -> W.WorkloadRequest:
    """VMs only, in NL (the demo's one NL site is ams): carrying it out needs compute steps
    alone, so a `tandem compute --driver sim` unit on ams makes it active (no switches)."""
    return W.WorkloadRequest(
        tenant=tenant, workload_id=workload_id, priority=W.PRIORITY_CLASS_STANDARD,
        groups=[W.VmGroup(group_id="app", count=vms, vcpus=1, memory_gib=2)],
        rules=W.Rules(vm_jurisdictions=["NL"]))


def start_compute(bootstrap: str, prefix: str, site: str, tmp: Path,
                  fail: str = "") -> subprocess.Popen[bytes]:
    """A real compute control unit process (simulated hypervisor) for one site; `fail`: VM
    names whose creation it refuses."""
    return start_unit(site, bootstrap, prefix, tmp, fail=fail)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process this test started (by its own handle), SIGTERM then SIGKILL."""
    stop_units([proc])
