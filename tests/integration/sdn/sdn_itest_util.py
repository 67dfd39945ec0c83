"""Helpers of the SDN integration tests: ovs-ofctl readers, Kafka collector, UDP flows (the
last from `tandem.sdn.wanhosts`, which the demo uses too)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

# One implementation of the hosts' addresses and the UDP flows, shared with the demo.
from tandem.sdn.wanhosts import BlockAddresses, dump_flows, dump_meters, run_flow, sh  # noqa: F401

REPO = Path(__file__).resolve().parents[3]


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


class Flow:
    """Run the UDP sink in one namespace and the source in another (bounded in time)."""

    run = staticmethod(run_flow)


