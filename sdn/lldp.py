"""LLDP for discovering inter-site links, and comparing what is heard with what is declared
(pure: bytes in, bytes out, no sockets).

Each control unit sends an LLDP frame out of every WAN port of its switches; the neighbour's
switch punts it (LLDP entry, priority 65000) to the neighbour's control unit, which learns
"my (dpid, port) hears (peer site, peer dpid, peer port)". The chassis id carries the dpid,
the port id the OpenFlow port number, the system name the site id — enough to compare with
the declared links without any shared state between control units.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from os_ken.lib.packet import ethernet, lldp, packet

LLDP_DST = lldp.LLDP_MAC_NEAREST_BRIDGE
_CHASSIS_PREFIX = b"dpid:"


@dataclass(frozen=True, slots=True)
class Heard:
    peer_site: str
    peer_dpid: int
    peer_port: int


def build_lldp(site: str, dpid: int, port: int, ttl: int = 120) -> bytes:
    src = "02:7d:%02x:%02x:%02x:%02x" % ((dpid >> 8) & 0xFF, dpid & 0xFF, (port >> 8) & 0xFF,
                                          port & 0xFF)
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=LLDP_DST, src=src, ethertype=0x88CC))
    tlvs = (
        lldp.ChassisID(subtype=lldp.ChassisID.SUB_LOCALLY_ASSIGNED,
                       chassis_id=_CHASSIS_PREFIX + b"%016x" % dpid),
        lldp.PortID(subtype=lldp.PortID.SUB_PORT_COMPONENT, port_id=struct.pack("!I", port)),
        lldp.TTL(ttl=ttl),
        lldp.SystemName(system_name=site.encode()),
        lldp.End(),
    )
    pkt.add_protocol(lldp.lldp(tlvs))
    pkt.serialize()
    return bytes(pkt.data)


def parse_lldp(data: bytes) -> Heard | None:
    """The sender of a Tandem LLDP frame, or None for anything else (never raises)."""
    try:
        pkt = packet.Packet(bytearray(data))
        l = pkt.get_protocol(lldp.lldp)
        if l is None:
            return None
        dpid = port = None
        site = ""
        for t in l.tlvs:
            if isinstance(t, lldp.ChassisID) and t.chassis_id.startswith(_CHASSIS_PREFIX):
                dpid = int(t.chassis_id[len(_CHASSIS_PREFIX):], 16)
            elif isinstance(t, lldp.PortID) and len(t.port_id) == 4:
                port = struct.unpack("!I", t.port_id)[0]
            elif isinstance(t, lldp.SystemName):
                site = t.system_name.decode(errors="replace")
        if dpid is None or port is None:
            return None
        return Heard(site, dpid, port)
    except Exception:  # a malformed frame from the wire is not our crash
        return None


OK, MISWIRED, MISSING, UNDECLARED = "ok", "miswired", "missing", "undeclared"


def classify(expected: tuple[str, int] | None, heard: Heard | None) -> str | None:
    """Compare a port's declared peer (site, port) with what LLDP heard there.
    None means nothing to report (no declared link and nothing heard)."""
    if expected is None:
        return UNDECLARED if heard is not None else None
    if heard is None:
        return MISSING
    if (heard.peer_site, heard.peer_port) == expected:
        return OK
    return MISWIRED


def expected_peers(site: str, links: Mapping[str, tuple[str, int, str, int]]
                   ) -> dict[int, tuple[str, str, int]]:
    """port → (link_id, peer site, peer port) for `site`, from links as
    {link_id: (site_a, port_a, site_b, port_b)}."""
    out: dict[int, tuple[str, str, int]] = {}
    for lid, (sa, pa, sb, pb) in links.items():
        if sa == site:
            out[pa] = (lid, sb, pb)
        elif sb == site:
            out[pb] = (lid, sa, pa)
    return out
