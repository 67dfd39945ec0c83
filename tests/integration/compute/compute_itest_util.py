"""What the compute units' tests share: building a compute command, reading a topic back."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer

from tandem.events import new_meta
from tandem.v1 import commands_pb2

C = commands_pb2.ComputeCommand


def command(site: str, action: Any, name: str, workload: str = "",
            address: str = "") -> commands_pb2.ComputeCommand:
    """A command for VM `name` (its workload: the name's first dash-separated part)."""
    vm = commands_pb2.VmSpec(vm_name=name, workload_id=workload or name.split("-")[0],
                             vcpus=2, memory_gib=1, storage_gib=2)
    return C(meta=new_meta("test"), command_id=str(uuid.uuid4()), site_id=site,
             action=action, vm=vm, ipv4_address=address)


async def read(broker: str, topic: str, want: int, timeout_s: float = 30) -> list[bytes]:
    """Until `want` records are read (or the deadline: the caller's assertion says what)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker, auto_offset_reset="earliest")
    await consumer.start()
    out: list[bytes] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(out) < want and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            out.extend(r.value for recs in batch.values() for r in recs)
    finally:
        await consumer.stop()
    return out
