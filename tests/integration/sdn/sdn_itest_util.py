"""Helpers of the SDN integration tests: port counters and a Kafka collector (switch readers,
host addresses and UDP flows are `tandem.sdn.wanhosts`, which the demo uses too)."""

from __future__ import annotations

import re
import time
from typing import Any

from tandem.sdn.wanhosts import sh


def port_tx_bytes(bridge: str) -> dict[int, int]:
    out = sh("ovs-ofctl", "-O", "OpenFlow13", "--no-names", "dump-ports", bridge)
    res = {}
    for m in re.finditer(r"port\s+\"?(\w+)\"?:.*?tx pkts=\d+, bytes=(\d+)", out, re.S):
        if m.group(1).isdigit():
            res[int(m.group(1))] = int(m.group(2))
    return res


async def collect(bootstrap: str, topic: str, schema: Any, pred: Any, timeout: float = 20.0,
                  from_beginning: bool = True) -> list[Any]:
    """Events of `topic` matching `pred` until one matches (or timeout: returns [])."""
    from aiokafka import AIOKafkaConsumer

    c = AIOKafkaConsumer(topic, isolation_level="read_committed", bootstrap_servers=bootstrap, group_id=None,
                         auto_offset_reset="earliest" if from_beginning else "latest",
                         fetch_max_wait_ms=100)
    await c.start()
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not found:
            batch = await c.getmany(timeout_ms=300)
            for recs in batch.values():
                for r in recs:
                    ev = schema.FromString(r.value)
                    if pred(ev):
                        found.append(ev)
    finally:
        await c.stop()
    return found
