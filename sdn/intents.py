"""Path reservations → OpenFlow 1.3 flow entries and meters (pure, Faucet style).

Why a spec layer: the same hashable `FlowSpec`/`MeterSpec` values are (a) what a command
intends, (b) what a switch's flow/meter statistics say it has, and (c) what the fake table
holds, so planning, reconciliation and tests all compare like with like. Conversion to
os-ken messages happens at the end (`to_msg`) with ``datapath=None``; the thin app attaches
the datapath only when it sends.

Cookie layout (64 bits): ``0x7D`` owner tag in the top byte (entries without it are not
ours and are never touched), 40-bit hash of the reservation id, 16-bit generation. The cookie
identifies the reservation and generation of every entry in `dump-flows`.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

OWNER_TAG = 0x7D
COOKIE_TAG_MASK = 0xFF << 56
INFRA_COOKIE = (OWNER_TAG << 56) | 0x1
ETH_TYPE_IPV4 = 0x0800
ETH_TYPE_LLDP = 0x88CC
PRIO_LLDP = 65000
PRIO_BASE = 1000
TABLE = 0

# A match is a sorted tuple of (os-ken OXM field name, value); masked values are tuples.
MatchKey = tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class TrafficMatch:
    """Traffic a reservation carries; empty/zero fields match anything."""

    ipv4_src: str = ""
    ipv4_dst: str = ""
    ip_proto: int = 0
    dscp: int = 0


@dataclass(frozen=True, slots=True)
class Hop:
    dpid: int
    in_port: int
    out_port: int


@dataclass(frozen=True, slots=True)
class PathIntent:
    """One generation of a reservation's path through this site's switches."""

    reservation_id: str
    generation: int
    match: TrafficMatch
    hops: tuple[Hop, ...]
    rate_kbps: int
    ingress: bool = False


@dataclass(frozen=True, slots=True)
class FlowSpec:
    dpid: int
    priority: int
    match: MatchKey
    cookie: int
    out_port: int  # 0 = drop (no output action)
    meter_id: int = 0

    @property
    def key(self) -> tuple[int, int, MatchKey]:
        """What OpenFlow uses to decide that two entries are "the same entry"."""
        return (self.dpid, self.priority, self.match)


@dataclass(frozen=True, slots=True)
class MeterSpec:
    dpid: int
    meter_id: int
    rate_kbps: int
    burst_kb: int


@functools.lru_cache(maxsize=1 << 16)
def cookie_for(reservation_id: str, generation: int) -> int:
    h = int.from_bytes(hashlib.blake2b(reservation_id.encode(), digest_size=5).digest(), "big")
    return (OWNER_TAG << 56) | (h << 16) | (generation & 0xFFFF)


def is_ours(cookie: int) -> bool:
    return (cookie >> 56) == OWNER_TAG


def burst_for(rate_kbps: int) -> int:
    """Burst of ~100 ms at the rate (at least 16 kb): absorbs scheduling jitter of a
    userspace datapath without letting a flow exceed its rate over a measurement window."""
    return max(16, rate_kbps // 10)


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_FULL_MASK = "255.255.255.255"


def _ip_field(text: str, where: str) -> Any:
    """An address or CIDR block as an OXM value: "a.b.c.d" for a host (or /32), the tuple
    ("network", "netmask") for a block, None for /0 (matches anything: the field is left out,
    as a switch would report it). Host bits of a block are cleared ("10.1.2.3/24" is
    10.1.2.0/24), as Open vSwitch does, so what we intend equals what the switch reports."""
    if _DOTTED.fullmatch(text):
        return text  # the common case (canonical dotted quad), without ipaddress
    try:
        net = ipaddress.IPv4Network(text, strict=False)
    except ValueError as exc:
        raise ValueError(f"{where}: bad IPv4 address/prefix {text!r}: {exc}") from None
    if net.prefixlen == 32:
        return str(net.network_address)
    if net.prefixlen == 0:
        return None
    return (str(net.network_address), str(net.netmask))


def _prefix_len(value: Any) -> int:
    """Specificity of an IPv4 OXM value: 32 for a host, the mask's bits for a block."""
    if isinstance(value, tuple):
        return bin(int(ipaddress.IPv4Address(value[1]))).count("1")
    return 32


@functools.lru_cache(maxsize=1 << 16)
def match_key(in_port: int, m: TrafficMatch) -> MatchKey:
    fields: dict[str, Any] = {"in_port": in_port, "eth_type": ETH_TYPE_IPV4}
    if m.ipv4_src and (v := _ip_field(m.ipv4_src, "match.ipv4_src")) is not None:
        fields["ipv4_src"] = v
    if m.ipv4_dst and (v := _ip_field(m.ipv4_dst, "match.ipv4_dst")) is not None:
        fields["ipv4_dst"] = v
    if m.ip_proto:
        fields["ip_proto"] = m.ip_proto
    if m.dscp:
        fields["ip_dscp"] = m.dscp
    return tuple(sorted(fields.items()))


def priority_for(m: TrafficMatch) -> int:
    """More specific entries win: `PRIO_BASE` + prefix length of the source + that of the
    destination (32 for a host, 0 when unset) + 1 for a protocol + 1 for a DSCP value.

    Why a sum: each term grows with its field's specificity, so a match strictly inside
    another one (every field at least as specific, one more so) always gets a strictly higher
    priority — a workload's /24 entry beats a broader /16 one, a host entry beats its /24.
    Matches that overlap without one containing the other may tie; Tandem's address blocks
    are disjoint per group, so its own reservations never overlap that way."""
    n = 0
    for text, where in ((m.ipv4_src, "match.ipv4_src"), (m.ipv4_dst, "match.ipv4_dst")):
        if text:
            v = text if _DOTTED.fullmatch(text) else _ip_field(text, where)
            n += 0 if v is None else _prefix_len(v)
    return PRIO_BASE + n + (1 if m.ip_proto else 0) + (1 if m.dscp else 0)


def metered_dpid(intent: PathIntent) -> int | None:
    """The switch that polices the reservation: the first hop on the ingress site, where the
    traffic enters the WAN (policing at the entry is enough: what passes it is within the
    rate on every link after it; transit and egress switches only forward)."""
    if intent.ingress and intent.rate_kbps > 0 and intent.hops:
        return intent.hops[0].dpid
    return None


def path_flows(intent: PathIntent, meters: Mapping[int, int]) -> list[FlowSpec]:
    """Flow entries of one path generation; `meters` maps dpid → meter id of the reservation."""
    cookie = cookie_for(intent.reservation_id, intent.generation)
    prio = priority_for(intent.match)
    policed = metered_dpid(intent)
    return [
        FlowSpec(
            dpid=h.dpid,
            priority=prio,
            match=match_key(h.in_port, intent.match),
            cookie=cookie,
            out_port=h.out_port,
            meter_id=meters.get(h.dpid, 0) if i == 0 and policed is not None else 0,
        )
        for i, h in enumerate(intent.hops)
    ]


def path_meters(intent: PathIntent, meters: Mapping[int, int]) -> list[MeterSpec]:
    dp = metered_dpid(intent)
    if dp is None:
        return []
    return [MeterSpec(dp, meters[dp], intent.rate_kbps, burst_for(intent.rate_kbps))]


def infra_flows(dpid: int) -> list[FlowSpec]:
    """Entries every switch of ours carries: LLDP to the controller (discovery)."""
    return [
        FlowSpec(
            dpid=dpid,
            priority=PRIO_LLDP,
            match=(("eth_type", ETH_TYPE_LLDP),),
            cookie=INFRA_COOKIE,
            out_port=ofp.OFPP_CONTROLLER,
        )
    ]


# ---------------------------------------------------------------- spec → message (datapath=None)


def _ofp_match(key: MatchKey) -> parser.OFPMatch:
    return parser.OFPMatch(**dict(key))


def flow_add(spec: FlowSpec) -> parser.OFPFlowMod:
    inst: list[Any] = []
    if spec.meter_id:
        inst.append(parser.OFPInstructionMeter(spec.meter_id, ofp.OFPIT_METER))
    if spec.out_port:
        max_len = ofp.OFPCML_NO_BUFFER if spec.out_port == ofp.OFPP_CONTROLLER else 0
        inst.append(
            parser.OFPInstructionActions(
                ofp.OFPIT_APPLY_ACTIONS, [parser.OFPActionOutput(spec.out_port, max_len)]
            )
        )
    return parser.OFPFlowMod(
        None,
        cookie=spec.cookie,
        table_id=TABLE,
        command=ofp.OFPFC_ADD,
        priority=spec.priority,
        match=_ofp_match(spec.match),
        instructions=inst,
    )


def flow_delete(spec: FlowSpec) -> parser.OFPFlowMod:
    """Strict delete of exactly this entry, and only while it still carries our cookie
    (an entry already replaced by a newer generation has another cookie and survives)."""
    return parser.OFPFlowMod(
        None,
        cookie=spec.cookie,
        cookie_mask=0xFFFFFFFFFFFFFFFF,
        table_id=TABLE,
        command=ofp.OFPFC_DELETE_STRICT,
        priority=spec.priority,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        match=_ofp_match(spec.match),
    )


def meter_mod(spec: MeterSpec, command: int) -> parser.OFPMeterMod:
    bands = []
    if command != ofp.OFPMC_DELETE:
        bands = [parser.OFPMeterBandDrop(rate=spec.rate_kbps, burst_size=spec.burst_kb)]
    return parser.OFPMeterMod(
        None,
        command=command,
        flags=ofp.OFPMF_KBPS | ofp.OFPMF_BURST | ofp.OFPMF_STATS,
        meter_id=spec.meter_id,
        bands=bands,
    )


# ---------------------------------------------------------------- switch answers → specs


def normalise_match(items: Iterable[tuple[str, Any]]) -> MatchKey:
    """OXM fields as a switch reports them → our MatchKey: IPv4 values with a full mask
    become plain addresses, masked ones are reduced to (network, netmask) with host bits
    cleared, a zero mask (matches anything) drops the field — so a reported entry compares
    equal to the intended one whatever spelling the switch chose."""
    out: dict[str, Any] = {}
    for name, value in items:
        if name in ("ipv4_src", "ipv4_dst") and isinstance(value, tuple) and len(value) == 2:
            value = _masked(str(value[0]), str(value[1]))
            if value is None:
                continue
        out[name] = value
    return tuple(sorted(out.items()))


def _masked(addr: str, mask: str) -> Any:
    if mask == _FULL_MASK:
        return addr
    a, m = int(ipaddress.IPv4Address(addr)), int(ipaddress.IPv4Address(mask))
    if m == 0:
        return None
    return (str(ipaddress.IPv4Address(a & m)), mask)  # (a non-contiguous mask stays as is)


def spec_from_parts(
    dpid: int, priority: int, cookie: int, match_items: Iterable[tuple[str, Any]],
    instructions: Iterable[Any],
) -> FlowSpec:
    meter_id = 0
    out_port = 0
    for inst in instructions:
        if isinstance(inst, parser.OFPInstructionMeter):
            meter_id = int(inst.meter_id)
        elif isinstance(inst, parser.OFPInstructionActions):
            for act in inst.actions:
                if isinstance(act, parser.OFPActionOutput):
                    out_port = int(act.port)
    return FlowSpec(
        dpid=dpid,
        priority=int(priority),
        match=normalise_match(match_items),
        cookie=int(cookie),
        out_port=out_port,
        meter_id=meter_id,
    )


def spec_from_flow_stats(dpid: int, stat: Any) -> FlowSpec:
    return spec_from_parts(dpid, stat.priority, stat.cookie, stat.match.items(), stat.instructions)


def spec_from_meter_config(dpid: int, stat: Any) -> MeterSpec:
    rate, burst = 0, 0
    for band in stat.bands:
        if isinstance(band, parser.OFPMeterBandDrop):
            rate, burst = int(band.rate), int(band.burst_size)
    return MeterSpec(dpid, int(stat.meter_id), rate, burst)


@dataclass(slots=True)
class Tables:
    """Flow and meter tables of one or more switches as specs (intended or actual)."""

    flows: dict[tuple[int, int, MatchKey], FlowSpec] = field(default_factory=dict)
    meters: dict[tuple[int, int], MeterSpec] = field(default_factory=dict)

    def add_flow(self, spec: FlowSpec) -> None:
        self.flows[spec.key] = spec

    def add_meter(self, spec: MeterSpec) -> None:
        self.meters[(spec.dpid, spec.meter_id)] = spec

    def for_dp(self, dpid: int) -> Tables:
        return Tables(
            {k: v for k, v in self.flows.items() if k[0] == dpid},
            {k: v for k, v in self.meters.items() if k[0] == dpid},
        )
