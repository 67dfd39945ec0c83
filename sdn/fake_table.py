"""A fake OpenFlow 1.3 flow/meter table for tests (Faucet's FakeOFTable idea, much smaller).

It applies the very os-ken messages the builders produce (OFPFlowMod, OFPMeterMod) and
answers "where does this packet go", so tests assert on forwarding behaviour instead of on
message fields. Entries match IPv4 blocks by mask (a packet from 10.128.3.7 hits an entry
for 10.128.3.0/24), with the highest priority winning, as on a real switch; entries are
stored as `FlowSpec`s normalised the way the unit reads a switch's flow statistics (host
bits of a block cleared), so what a test reads back is what reconciliation would see. It mimics the Open vSwitch behaviours we rely on: ADD with the same match and
priority replaces the entry (actions and cookie), a flow naming an unknown meter is refused,
deleting a meter deletes the entries using it, strict delete honours the cookie mask.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from tandem.sdn.intents import FlowSpec, MeterSpec, Tables, spec_from_parts


class FakeSwitchError(Exception):
    """What a real switch would have answered with an OFPT_ERROR."""


def _field_matches(entry_value: Any, packet_value: Any) -> bool:
    if isinstance(entry_value, tuple):  # (address, mask)
        net = ipaddress.IPv4Network(f"{entry_value[0]}/{entry_value[1]}", strict=False)
        return packet_value is not None and ipaddress.IPv4Address(packet_value) in net
    return bool(entry_value == packet_value)


@dataclass(slots=True)
class FakeSwitch:
    dpid: int
    flows: dict[tuple[int, Any], FlowSpec] = field(default_factory=dict)
    meters: dict[int, MeterSpec] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def apply(self, msg: Any) -> None:
        """Apply one message; a refused one raises FakeSwitchError (and is recorded)."""
        try:
            if isinstance(msg, parser.OFPFlowMod):
                self._flow_mod(msg)
            elif isinstance(msg, parser.OFPMeterMod):
                self._meter_mod(msg)
            elif isinstance(msg, parser.OFPBarrierRequest):
                pass
            else:
                raise FakeSwitchError(f"unsupported message {type(msg).__name__}")
        except FakeSwitchError as exc:
            self.errors.append(str(exc))
            raise

    def _flow_mod(self, msg: Any) -> None:
        spec = spec_from_parts(self.dpid, msg.priority, msg.cookie, msg.match.items(),
                               msg.instructions)
        key = (spec.priority, spec.match)
        if msg.command == ofp.OFPFC_ADD:
            if spec.meter_id and spec.meter_id not in self.meters:
                raise FakeSwitchError(f"OFPMMFC_UNKNOWN_METER meter {spec.meter_id}")
            self.flows[key] = spec
        elif msg.command == ofp.OFPFC_DELETE_STRICT:
            have = self.flows.get(key)
            if have is not None and (have.cookie & msg.cookie_mask) == (
                msg.cookie & msg.cookie_mask
            ):
                del self.flows[key]
        elif msg.command == ofp.OFPFC_DELETE:
            want = dict(spec.match)
            for k, f in list(self.flows.items()):
                if (f.cookie & msg.cookie_mask) != (msg.cookie & msg.cookie_mask):
                    continue
                fm = dict(f.match)
                if all(fm.get(n) == v for n, v in want.items()):
                    del self.flows[k]
        else:
            raise FakeSwitchError(f"unsupported flow-mod command {msg.command}")

    def _meter_mod(self, msg: Any) -> None:
        rate, burst = 0, 0
        for band in msg.bands:
            rate, burst = int(band.rate), int(band.burst_size)
        spec = MeterSpec(self.dpid, int(msg.meter_id), rate, burst)
        if msg.command == ofp.OFPMC_ADD:
            if spec.meter_id in self.meters:
                raise FakeSwitchError(f"OFPMMFC_METER_EXISTS meter {spec.meter_id}")
            self.meters[spec.meter_id] = spec
        elif msg.command == ofp.OFPMC_MODIFY:
            if spec.meter_id not in self.meters:
                raise FakeSwitchError(f"OFPMMFC_UNKNOWN_METER meter {spec.meter_id}")
            self.meters[spec.meter_id] = spec
        elif msg.command == ofp.OFPMC_DELETE:
            self.meters.pop(spec.meter_id, None)
            for k, f in list(self.flows.items()):
                if f.meter_id == spec.meter_id:
                    del self.flows[k]
        else:
            raise FakeSwitchError(f"unsupported meter-mod command {msg.command}")

    def lookup(self, in_port: int, packet: Mapping[str, Any]) -> FlowSpec | None:
        """The entry a packet hits: highest priority among those whose every field matches
        (IPv4 fields of an entry may be (address, mask) blocks). Two different entries of the
        same, highest priority that both match are an error: OpenFlow leaves the choice
        undefined, so a test that gets there must fail rather than pass by luck."""
        pkt = dict(packet, in_port=in_port)
        best: FlowSpec | None = None
        tie: FlowSpec | None = None
        for f in self.flows.values():
            if all(_field_matches(v, pkt.get(n)) for n, v in f.match):
                if best is None or f.priority > best.priority:
                    best, tie = f, None
                elif f.priority == best.priority:
                    tie = f
        if best is not None and tie is not None:
            raise FakeSwitchError(f"switch {self.dpid:#x}: packet {dict(pkt)} matches two "
                                  f"entries of priority {best.priority}: {dict(best.match)} "
                                  f"and {dict(tie.match)}")
        return best

    def tables(self) -> Tables:
        t = Tables()
        for f in self.flows.values():
            t.add_flow(f)
        for m in self.meters.values():
            t.add_meter(m)
        return t


@dataclass(slots=True)
class FakeNetwork:
    """Fake switches joined by links: `wiring[(dp, port)] = (peer_dp, peer_port)`."""

    switches: dict[int, FakeSwitch] = field(default_factory=dict)
    wiring: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)

    def switch(self, dpid: int) -> FakeSwitch:
        return self.switches.setdefault(dpid, FakeSwitch(dpid))

    def link(self, a: tuple[int, int], b: tuple[int, int]) -> None:
        self.wiring[a] = b
        self.wiring[b] = a

    def apply(self, dpid: int, msgs: Iterable[Any]) -> None:
        sw = self.switch(dpid)
        for m in msgs:
            sw.apply(m)

    def walk(self, dpid: int, in_port: int, packet: Mapping[str, Any],
             max_hops: int = 32) -> tuple[list[tuple[int, int, int, int]], tuple[int, int] | None]:
        """Follow a packet: returns [(dp, in_port, out_port, meter_id)...] and the (dp, port)
        where it leaves the network (a port with no link), or None if dropped or looping."""
        trail: list[tuple[int, int, int, int]] = []
        dp, port = dpid, in_port
        for _ in range(max_hops):
            f = self.switch(dp).lookup(port, packet)
            if f is None or f.out_port == 0:
                return trail, None
            trail.append((dp, port, f.out_port, f.meter_id))
            peer = self.wiring.get((dp, f.out_port))
            if peer is None:
                return trail, (dp, f.out_port)
            dp, port = peer
        return trail, None
