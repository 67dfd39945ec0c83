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
]


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
