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


class BlockAddresses:
    """Addresses from workload blocks on the site namespaces' host interfaces, so traffic can
    be sent from and to a workload's block: `connect` puts one address of a block at each of
    two sites, with on-link routes to the other's block (both ways: the receiver's reverse
    path check passes) and static neighbours (no ARP crosses the WAN: `tandem infra wan`
    does the same for the host addresses). `remove` takes away exactly what was added."""

    def __init__(self, wan: dict[str, Any]) -> None:
        self.wan = wan
        self._undo: list[list[str]] = []

    def _ns(self, site: str, *argv: str, undo: list[str] | None = None) -> None:
        s = self.wan["sites"][site]
        sh("ip", "netns", "exec", s["netns"], *argv)
        if undo is not None:
            self._undo.append(["ip", "netns", "exec", s["netns"], *undo])

    def connect(self, a: str, a_addr: str, a_block: str, b: str, b_addr: str,
                b_block: str) -> None:
        for site, addr, peer, peer_addr, peer_block in ((a, a_addr, b, b_addr, b_block),
                                                         (b, b_addr, a, a_addr, a_block)):
            dev = self.wan["sites"][site]["host_if"]
            mac = self.wan["sites"][peer]["host_mac"]
            self._ns(site, "ip", "addr", "add", f"{addr}/32", "dev", dev,
                     undo=["ip", "addr", "del", f"{addr}/32", "dev", dev])
            self._ns(site, "ip", "route", "add", peer_block, "dev", dev, "src", addr,
                     undo=["ip", "route", "del", peer_block, "dev", dev])
            self._ns(site, "ip", "neigh", "replace", peer_addr, "lladdr", mac, "dev", dev,
                     "nud", "permanent", undo=["ip", "neigh", "del", peer_addr, "dev", dev])

    def source(self, site: str, addr: str, block: str, to_site: str) -> None:
        """An address of `block` at `site` that sends to `to_site`'s host address (a demand to
        a site: the target is matched as the site, not as a block): the address, and at
        `to_site` an on-link route back to the block (reverse-path check) with a static
        neighbour."""
        dev = self.wan["sites"][site]["host_if"]
        self._ns(site, "ip", "addr", "add", f"{addr}/32", "dev", dev,
                 undo=["ip", "addr", "del", f"{addr}/32", "dev", dev])
        peer_dev = self.wan["sites"][to_site]["host_if"]
        self._ns(to_site, "ip", "route", "add", block, "dev", peer_dev,
                 undo=["ip", "route", "del", block, "dev", peer_dev])
        self._ns(to_site, "ip", "neigh", "replace", addr, "lladdr",
                 self.wan["sites"][site]["host_mac"], "dev", peer_dev, "nud", "permanent",
                 undo=["ip", "neigh", "del", addr, "dev", peer_dev])

    def remove(self) -> None:
        for argv in reversed(self._undo):
            sh(*argv, check=False)
        self._undo.clear()


class Flow:
    """Run the UDP sink in one namespace and the source in another (bounded in time)."""

    @staticmethod
    def run(src_ns: str, dst_ns: str, dst_ip: str, mbps: float, seconds: float,
            port: int = 5001, src_ip: str = "") -> dict[str, Any]:
        py = sys.executable
        recv = subprocess.Popen(
            ["ip", "netns", "exec", dst_ns, py, "-m", "tandem.sdn.traffic", "recv", "--port",
             str(port), "--seconds", str(seconds + 1.5)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=REPO)
        assert recv.stderr is not None
        ready = recv.stderr.readline()  # the receiver's socket is bound
        assert ready.strip() == b"ready", ready
        try:
            sent = json.loads(sh("ip", "netns", "exec", src_ns, py, "-m", "tandem.sdn.traffic",
                                 "send", "--dst", dst_ip, "--port", str(port), "--mbps",
                                 str(mbps), "--seconds", str(seconds),
                                 *(["--src", src_ip] if src_ip else [])))
        except BaseException:
            recv.kill()  # ours, by its handle
            recv.wait(5)
            raise
        out, _ = recv.communicate(timeout=seconds + 10)
        return {"sent": sent, "recv": json.loads(out)}
