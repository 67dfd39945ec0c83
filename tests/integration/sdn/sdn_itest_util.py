"""Helpers of the SDN integration tests: ovs-ofctl readers, Kafka collector, UDP flows."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]


def sh(*argv: str, check: bool = True) -> str:
    res = subprocess.run(list(argv), capture_output=True, text=True)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {res.stderr.strip()}")
    return res.stdout


def dump_flows(bridge: str) -> list[str]:
    out = sh("ovs-ofctl", "-O", "OpenFlow13", "--no-names", "dump-flows", bridge)
    return [l.strip() for l in out.splitlines() if "cookie=" in l]


def dump_meters(bridge: str) -> dict[int, int]:
    """meter id → rate (kbps) from `ovs-ofctl dump-meters`."""
    out = sh("ovs-ofctl", "-O", "OpenFlow13", "dump-meters", bridge)
    meters = {}
    for m in re.finditer(r"meter=(\d+)\s+kbps.*?rate=(\d+)", out, re.S):
        meters[int(m.group(1))] = int(m.group(2))
    return meters


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

    @staticmethod
    def run(src_ns: str, dst_ns: str, dst_ip: str, mbps: float, seconds: float,
            port: int = 5001) -> dict[str, Any]:
        py = sys.executable
        recv = subprocess.Popen(
            ["ip", "netns", "exec", dst_ns, py, "-m", "tandem.sdn.traffic", "recv", "--port",
             str(port), "--seconds", str(seconds + 1.5)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=REPO)
        assert recv.stderr is not None
        ready = recv.stderr.readline()  # the receiver's socket is bound
        assert ready.strip() == b"ready", ready
        sent = json.loads(sh("ip", "netns", "exec", src_ns, py, "-m", "tandem.sdn.traffic",
                             "send", "--dst", dst_ip, "--port", str(port), "--mbps", str(mbps),
                             "--seconds", str(seconds)))
        out, _ = recv.communicate(timeout=seconds + 10)
        return {"sent": sent, "recv": json.loads(out)}
