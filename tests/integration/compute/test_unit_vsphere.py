"""A compute unit driving vSphere (the simulator) end to end through the broker: commands on
the site's topic, the VMs in vCenter (govc), acknowledgements with addresses and references,
a duplicated command acknowledged NOOP without a twin, a refused one FAILED naming the VM,
and the cluster's free capacity published as telemetry. Needs the broker and the simulator
`make test` starts (fails, never skips, without them)."""

from __future__ import annotations

import asyncio
import functools
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from tandem.services.compute.unit import ComputeUnit
from tandem.services.compute.vsphere import VsphereDriver
from tandem.services.kafka_admin import ensure_topics
from tandem.streams import topics as T
from tandem.v1 import commands_pb2, telemetry_pb2
import compute_itest_util
from compute_itest_util import read
from vcsim_util import Vcsim, vm_paths

pytestmark = pytest.mark.integration
SITE = "vc1"
C = commands_pb2.ComputeCommand
command = functools.partial(compute_itest_util.command, SITE)


async def test_unit_on_vsphere(tandem_topics: str, kafka_bootstrap: str, vcsim: Vcsim,
                               govc_ready: object) -> None:
    prefix = tandem_topics
    await ensure_topics(kafka_bootstrap, T.site_topics([SITE], prefix))
    stem = f"u{uuid.uuid4().hex[:8]}"
    a, b = f"{stem}-g0-0", f"{stem}-g0-1"
    driver = VsphereDriver(vcsim.config(folder=f"unit-{stem}"))
    stop = asyncio.Event()
    unit = ComputeUnit(SITE, driver, kafka_bootstrap, prefix, capacity_interval_s=0.5)
    task = asyncio.create_task(unit.run(stop))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        create = command(C.ACTION_CREATE, a, address="10.6.0.2")
        cmds = [create, create, command(C.ACTION_CREATE, b),
                command(C.ACTION_CREATE, a, workload="intruder"), command(C.ACTION_DELETE, b)]
        topic = T.compute_commands_topic(SITE, prefix)
        for cmd in cmds:
            await producer.send_and_wait(topic, cmd.SerializeToString(),
                                         key=cmd.vm.workload_id.encode())
        acks = [commands_pb2.ComputeAck.FromString(v) for v in
                await read(kafka_bootstrap, T.SPECS[T.COMPUTE_ACKS_BASE].name(prefix), 5)]
        by_id = {x.command_id: x for x in acks}
        assert [by_id[c.command_id].status for c in cmds[1:]] == [
            commands_pb2.ACK_STATUS_NOOP, commands_pb2.ACK_STATUS_OK,
            commands_pb2.ACK_STATUS_FAILED, commands_pb2.ACK_STATUS_OK]
        first = [x for x in acks if x.command_id == create.command_id]
        assert first[0].status == commands_pb2.ACK_STATUS_OK
        assert list(first[0].addresses) == ["10.6.0.2"] and first[0].vm_ref.startswith("vm-")
        refused = by_id[cmds[3].command_id].error
        assert a in refused and "intruder" in refused, refused
        cfg = driver.config
        assert vm_paths(cfg, a) == [f"/DC0/vm/unit-{stem}/{a}"] and vm_paths(cfg, b) == []
        free_now = driver.capacity().vcpus
        samples = [telemetry_pb2.TelemetrySample.FromString(v) for v in
                   await read(kafka_bootstrap, T.SPECS[T.TELEMETRY_BASE].name(prefix), 50,
                              timeout_s=3)]
        free = [s.site.free_vcpus for s in samples if s.site.site_id == SITE]
        assert free and free[-1] == free_now
    finally:
        await producer.stop()
        stop.set()
        await asyncio.wait_for(task, 30)
        driver.delete(a)
        driver.close()
