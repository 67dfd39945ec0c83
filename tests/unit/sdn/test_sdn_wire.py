"""The direct encoder produces exactly os-ken's bytes for every shape the unit sends."""

from __future__ import annotations

import itertools

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from tandem.sdn.intents import FlowSpec, MeterSpec, TrafficMatch, cookie_for, infra_flows, match_key
from tandem.sdn.state import FLOW_ADD, FLOW_DEL, METER_ADD, METER_DEL, METER_MOD, Op


class _Dp:
    ofproto = ofp
    ofproto_parser = parser


def oskens_bytes(op: Op, xid: int) -> bytes:
    msg = op.to_msg()
    msg.datapath = _Dp()
    msg.set_xid(xid)
    msg.serialize()
    return bytes(msg.buf)


MATCHES = [
    TrafficMatch(*combo)
    for combo in itertools.product(("", "10.1.2.3", "10.1.0.0/16"), ("", "192.168.9.1"),
                                   (0, 17), (0, 46))
] + [
    # workload blocks (CIDR) on either side or both, odd prefix lengths, host bits set, /0, /32
    TrafficMatch(src, dst)
    for src, dst in itertools.product(
        ("10.128.3.0/24", "10.128.3.77/27", "10.128.0.0/9", "0.0.0.0/0", "10.1.2.3/32"),
        ("10.128.4.0/24", "10.255.255.254/31", "10.0.0.0/1", "192.168.9.1"))
]


def test_blocks_are_sent_with_their_mask():
    """A /24 block goes on the wire as an OXM with the mask bit and 8 bytes (value, mask)."""
    spec = FlowSpec(1, 1048, match_key(2, TrafficMatch("10.128.3.0/24")), 1, 3)
    b = Op(FLOW_ADD, spec).encode(1)
    oxm_ipv4_src_masked = ((0x8000 << 16) | (11 << 9) | (1 << 8) | 8).to_bytes(4, "big")
    assert oxm_ipv4_src_masked + bytes([10, 128, 3, 0, 255, 255, 255, 0]) in b


@pytest.mark.parametrize("m", MATCHES, ids=repr)
@pytest.mark.parametrize("meter", [0, 7])
@pytest.mark.parametrize("kind", [FLOW_ADD, FLOW_DEL])
def test_flow_mods_match_oskens_serialisation(m, meter, kind):
    spec = FlowSpec(3, 1020, match_key(5, m), cookie_for("r", 9), 4, meter)
    op = Op(kind, spec)
    assert op.encode(0x1234) == oskens_bytes(op, 0x1234)


def test_controller_output_and_infra_entry_match():
    for spec in infra_flows(1):
        op = Op(FLOW_ADD, spec)
        assert op.encode(9) == oskens_bytes(op, 9)


@pytest.mark.parametrize("kind", [METER_ADD, METER_MOD, METER_DEL])
def test_meter_mods_match_oskens_serialisation(kind):
    op = Op(kind, MeterSpec(1, 42, 8000, 800))
    assert op.encode(77) == oskens_bytes(op, 77)
