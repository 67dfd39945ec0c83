"""A compute unit driving libvirt (its test driver) end to end through the broker.

Commands go on the site's command topic as the executor sends them; the unit applies them on
the libvirt host and acknowledges each on `tandem.compute.acks` (a duplicated command:
NOOP, no twin), and publishes the host's free capacity as telemetry. Needs the broker
`make test` starts (fails, never skips, without it) and libvirt-python.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

from aiokafka import AIOKafkaProducer

from tandem.services.kafka_admin import ensure_topics
from tandem.streams import topics as T
from tandem.v1 import commands_pb2, telemetry_pb2
import compute_itest_util
from compute_itest_util import read
from test_contract_libvirt import NODE_XML, make_driver

SITE = "kvm1"
C = commands_pb2.ComputeCommand
command = functools.partial(compute_itest_util.command, SITE)


async def test_unit_applies_acknowledges_and_reports_capacity(
        tandem_topics: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    from tandem.services.compute.unit import ComputeUnit
    prefix = tandem_topics
    await ensure_topics(kafka_bootstrap, T.site_topics([SITE], prefix))
    node = tmp_path / "node.xml"
    node.write_text(NODE_XML)
    driver = make_driver(f"test://{node}")
    conn = driver.connection()
    stop = asyncio.Event()
    unit = ComputeUnit(SITE, driver, kafka_bootstrap, prefix, capacity_interval_s=0.5)
    task = asyncio.create_task(unit.run(stop))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        create = command(C.ACTION_CREATE, "w5-g0-0", address="10.5.0.2")
        topic = T.compute_commands_topic(SITE, prefix)
        for cmd in (create, create, command(C.ACTION_CREATE, "w6-g0-0")):
            await producer.send_and_wait(topic, cmd.SerializeToString(),
                                         key=cmd.vm.workload_id.encode())
        acks = [commands_pb2.ComputeAck.FromString(v) for v in
                await read(kafka_bootstrap, T.SPECS[T.COMPUTE_ACKS_BASE].name(prefix), 3)]
        assert [a.status for a in acks] == [commands_pb2.ACK_STATUS_OK,
                                            commands_pb2.ACK_STATUS_NOOP,
                                            commands_pb2.ACK_STATUS_OK]
        assert acks[0].addresses[0] == "10.5.0.2" and acks[0].vm_ref == acks[1].vm_ref
        assert sorted(d.name() for d in conn.listAllDomains()) == ["w5-g0-0", "w6-g0-0"]
        samples = [telemetry_pb2.TelemetrySample.FromString(v) for v in
                   await read(kafka_bootstrap, T.SPECS[T.TELEMETRY_BASE].name(prefix), 50,
                              timeout_s=3)]
        free = [s.site.free_vcpus for s in samples if s.site.site_id == SITE]
        assert free and free[-1] == 28.0 and max(free) <= 32.0
    finally:
        await producer.stop()
        stop.set()
        await asyncio.wait_for(task, 30)
