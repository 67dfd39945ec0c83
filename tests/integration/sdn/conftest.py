"""Shared fixtures of the SDN integration tests: a real emulated WAN (5-site ring on Open
vSwitch), one real control-unit process per site, Kafka topics under a fresh prefix.

Nothing here skips: no OVS, no root or no broker makes the tests fail with the reason.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tandem.sdn.driver import SdnDriver
from tandem.sdn.procs import Units
from tandem.sdn.paths import WanLayout

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
RING = HERE / "ring5.json"
RUN_DIR = REPO / ".local" / "sdn-test"


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


@pytest.fixture(scope="session")
def wan() -> Iterator[dict[str, Any]]:
    """The 5-site ring, built for this session and removed after it."""
    from tandem.engine.loaders import load_topology
    from tandem.services import cli_wan

    if os.geteuid() != 0:
        pytest.fail("the SDN integration tests need root (network namespaces, OVS)",
                    pytrace=False)
    try:
        cli_wan.ensure_ovs()
        cli_wan.wan_down()  # a WAN left over by an interrupted run of ours (state file)
        state = cli_wan.wan_up(load_topology(RING), scale=1.0)
    except Exception as exc:
        pytest.fail(f"cannot build the emulated WAN: {exc}", pytrace=False)
    yield state["layout"]
    cli_wan.wan_down()


@pytest.fixture(scope="session")
def layout(wan: dict[str, Any]) -> WanLayout:
    return WanLayout.from_json(wan)


@pytest.fixture(scope="session")
def sdn_prefix(kafka_bootstrap: str) -> str:
    return f"test-sdn-{uuid.uuid4().hex[:8]}."


@pytest.fixture(scope="session")
def units(wan: dict[str, Any], kafka_bootstrap: str, sdn_prefix: str) -> Iterator[Units]:
    from tandem.services.kafka_admin import ensure_topics
    from tandem.streams import topics as T

    asyncio.run(ensure_topics(kafka_bootstrap, T.core_topics(sdn_prefix)
                              + T.site_topics(list(wan["sites"]), sdn_prefix)))
    u = Units(wan, kafka_bootstrap, sdn_prefix, RUN_DIR)
    for site in wan["sites"]:
        u.start(site)
    try:
        u.wait_connected()
        yield u
    finally:
        for site in list(u.procs):
            u.stop(site)


@pytest.fixture
async def driver(units: Units, kafka_bootstrap: str, sdn_prefix: str) -> AsyncIterator[SdnDriver]:
    d = SdnDriver(kafka_bootstrap, sdn_prefix)
    await d.start()
    yield d
    await d.stop()


async def collect(bootstrap: str, topic: str, schema: Any, pred: Any, timeout: float = 20.0,
                  from_beginning: bool = True) -> list[Any]:
    """Events of `topic` matching `pred` until one matches (or timeout: returns [])."""
    from aiokafka import AIOKafkaConsumer

    c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
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
             str(port), "--seconds", str(seconds + 1.5)], stdout=subprocess.PIPE, cwd=REPO)
        time.sleep(0.4)
        sent = json.loads(sh("ip", "netns", "exec", src_ns, py, "-m", "tandem.sdn.traffic",
                             "send", "--dst", dst_ip, "--port", str(port), "--mbps", str(mbps),
                             "--seconds", str(seconds)))
        out, _ = recv.communicate(timeout=seconds + 10)
        return {"sent": sent, "recv": json.loads(out)}
