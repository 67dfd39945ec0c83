"""Traffic on the emulated WAN (`tandem infra wan`): workload addresses on the site hosts and
timed UDP flows between them, for the whole-loop demo, the tests and by-hand sessions.

Why here: the demo shows traffic crossing a reserved path from a VM's address, and the SDN and
whole-loop tests check the same thing; one implementation serves both. Everything runs inside
the network namespaces `tandem infra wan up` created (`tdm-<site>`), by their names in the
WAN's layout, and `BlockAddresses.remove` takes away exactly what was added.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def sh(*argv: str, check: bool = True) -> str:
    res = subprocess.run(list(argv), capture_output=True, text=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {res.stderr.strip()}")
    return res.stdout


def dump_flows(bridge: str) -> list[str]:
    out = sh("ovs-ofctl", "-O", "OpenFlow13", "--no-names", "dump-flows", bridge)
    return [l.strip() for l in out.splitlines() if "cookie=" in l]


def entries_of(bridge: str, reservation_id: str) -> list[str]:
    """A reservation's entries on `bridge`, of any generation (the cookie's low 16 bits)."""
    from tandem.sdn.intents import cookie_for

    mine = cookie_for(reservation_id, 0) >> 16
    return [f for f in dump_flows(bridge)
            if "cookie=0x" in f and int(f.split("cookie=")[1].split(",")[0], 16) >> 16 == mine]


def dump_meters(bridge: str) -> dict[int, int]:
    """meter id → rate (kbps) from `ovs-ofctl dump-meters`."""
    out = sh("ovs-ofctl", "-O", "OpenFlow13", "dump-meters", bridge)
    meters = {}
    for m in re.finditer(r"meter=(\d+)\s+kbps.*?rate=(\d+)", out, re.S):
        meters[int(m.group(1))] = int(m.group(2))
    return meters


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


def run_flow(src_ns: str, dst_ns: str, dst_ip: str, mbps: float, seconds: float,
             port: int = 5001, src_ip: str = "") -> dict[str, Any]:
    """A UDP flow (`tandem.sdn.traffic`) from `src_ns` to `dst_ip` in `dst_ns`, bounded in
    time: {"sent": the sender's report, "recv": the sink's}. The sink is bound before the
    sender starts (it says "ready")."""
    py = sys.executable
    recv = subprocess.Popen(
        ["ip", "netns", "exec", dst_ns, py, "-m", "tandem.sdn.traffic", "recv", "--port",
         str(port), "--seconds", str(seconds + 1.5)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, cwd=REPO)
    assert recv.stderr is not None
    ready = recv.stderr.readline()  # the receiver's socket is bound
    if ready.strip() != b"ready":
        recv.kill()
        recv.wait(5)
        raise RuntimeError(f"the UDP sink in {dst_ns} did not start: {ready!r}")
    try:
        sent = json.loads(sh("ip", "netns", "exec", src_ns, py, "-m", "tandem.sdn.traffic",
                             "send", "--dst", dst_ip, "--port", str(port), "--mbps", str(mbps),
                             "--seconds", str(seconds), *(["--src", src_ip] if src_ip else [])))
    except BaseException:
        recv.kill()  # ours, by its handle
        recv.wait(5)
        raise
    out, _ = recv.communicate(timeout=seconds + 10)
    return {"sent": sent, "recv": json.loads(out)}
