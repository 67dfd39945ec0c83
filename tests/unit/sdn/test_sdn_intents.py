"""Intents → flow entries and meters, checked by forwarding behaviour on fake switches."""

from __future__ import annotations

import copy

import pytest
from sdn_ring import RING, SITE_OF_DP

from tandem.sdn.fake_table import FakeNetwork, FakeSwitchError
from tandem.sdn.intents import cookie_for, is_ours
from tandem.sdn.paths import install_commands, remove_command
from tandem.sdn.reconcile import diff
from tandem.sdn.state import NOOP, OK, REJECTED, SiteIntent

PKT = {"eth_type": 0x0800, "ipv4_src": "10.77.1.1", "ipv4_dst": "10.77.3.1", "ip_proto": 17}
MATCH = {"ipv4_src": "10.77.1.1", "ipv4_dst": "10.77.3.1"}


class Ring:
    """Four fake switches wired as the ring, one SiteIntent per site (a control unit each)."""

    def __init__(self) -> None:
        self.net = FakeNetwork()
        for l in RING.links.values():
            self.net.link((RING.dpids[l.site_a], l.port_a), (RING.dpids[l.site_b], l.port_b))
        self.units = {s: SiteIntent() for s in RING.dpids}
        for s, dp in RING.dpids.items():  # switch connects: the unit reconciles infra entries
            self.reconcile(s, dp)
        self.after_each_msg = lambda: None

    def reconcile(self, site: str, dp: int) -> None:
        d = diff(self.units[site].desired({dp}), self.net.switch(dp).tables())
        for op in d.plan.ops:
            self.net.apply(op.dpid, [op.to_msg()])

    def send(self, cmd):
        plan = self.units[cmd.site_id].apply_command(cmd)
        for phase in plan.phases:
            for op in phase:
                assert SITE_OF_DP[op.dpid] == cmd.site_id
                self.net.apply(op.dpid, [op.to_msg()])
                self.after_each_msg()
        return plan

    def walk(self, pkt=PKT):
        return self.net.walk(RING.dpids["s1"], 1, pkt)


def install(ring: Ring, rid="r1", gen=1, path=("l12", "l23"), rate=5000, **kw):
    cmds = install_commands(RING, reservation_id=rid, generation=gen, src="s1", link_path=path,
                            rate_kbps=rate, **{**MATCH, **kw})
    # egress first, ingress last (what the orchestrator does)
    return [ring.send(cmds[s]) for s in reversed(list(cmds))]


def test_reservation_traffic_leaves_each_switch_on_reserved_port_policed_at_ingress():
    ring = Ring()
    plans = install(ring)
    assert all(p.status == OK for p in plans)
    trail, exit_ = ring.walk()
    assert exit_ == (3, 1)  # delivered to s3's host port
    assert [(dp, out) for dp, _, out, _ in trail] == [(1, 2), (2, 3), (3, 1)]
    # the meter sits where the traffic enters the WAN; transit and egress only forward
    assert ring.net.switch(1).meters[trail[0][3]].rate_kbps == 5000
    assert [meter for *_, meter in trail[1:]] == [0, 0]
    assert not ring.net.switch(2).meters and not ring.net.switch(3).meters
    # other traffic is not forwarded by the reservation
    assert ring.walk({**PKT, "ipv4_dst": "10.77.4.1"})[1] is None


def test_entries_carry_cookie_of_reservation_and_generation():
    ring = Ring()
    install(ring, gen=7)
    cookies = {f.cookie for sw in ring.net.switches.values() for f in sw.flows.values()
               if f.priority < 65000}
    assert cookies == {cookie_for("r1", 7)}
    assert is_ours(cookie_for("r1", 7)) and cookie_for("r1", 7) != cookie_for("r2", 7)


def test_add_then_remove_leaves_tables_as_they_were():
    ring = Ring()
    before = {dp: copy.deepcopy(sw.tables()) for dp, sw in ring.net.switches.items()}
    install(ring)
    install(ring, rid="r2", path=("l41", "l34"), rate=0, ipv4_src="10.77.1.2")
    for s in ("s1", "s2", "s3"):
        assert ring.send(remove_command(s, "r1")).status == OK
    for s in ("s1", "s4", "s3"):
        assert ring.send(remove_command(s, "r2")).status == OK
    after = {dp: sw.tables() for dp, sw in ring.net.switches.items()}
    assert after == before


def test_repeat_install_is_noop_and_stale_generation_ignored():
    ring = Ring()
    install(ring, gen=2)
    assert all(p.status == NOOP for p in install(ring, gen=2))
    stale = install_commands(RING, reservation_id="r1", generation=1, src="s1",
                             link_path=("l41", "l34"), rate_kbps=5000, **MATCH)
    # the sites that already have generation 2 ignore the late generation 1
    assert ring.send(stale["s3"]).status == NOOP and ring.send(stale["s1"]).status == NOOP
    assert ring.walk()[1] == (3, 1)
    assert [dp for dp, *_ in ring.walk()[0]] == [1, 2, 3]


def test_bandwidth_change_modifies_meter_in_place():
    ring = Ring()
    install(ring, gen=1, rate=5000)
    plans = install(ring, gen=2, rate=8000)
    ops = [op.kind for p in plans for op in p.ops]
    assert "meter_mod" in ops and "meter_del" not in ops and "meter_add" not in ops
    trail, _ = ring.walk()
    assert ring.net.switch(1).meters[trail[0][3]].rate_kbps == 8000


def test_bad_command_is_rejected_with_field_named():
    ring = Ring()
    cmd = install_commands(RING, reservation_id="r1", generation=1, src="s1",
                           link_path=("l12",), ipv4_dst="10.77.999.1")["s1"]
    plan = ring.send(cmd)
    assert plan.status == REJECTED and "ipv4_dst" in plan.reason
    cmd.install.hops[0].out_port = 0
    assert "hops[0]" in ring.send(cmd).reason


def test_fake_switch_refuses_flow_with_unknown_meter():
    ring = Ring()
    plans = install(ring)
    flow_ops = [op for p in plans for op in p.ops if op.kind == "flow_add" and op.spec.meter_id]
    ring2 = Ring()
    with pytest.raises(FakeSwitchError, match="UNKNOWN_METER"):
        ring2.net.apply(flow_ops[0].dpid, [flow_ops[0].to_msg()])


def test_messages_are_built_without_datapath():
    ring = Ring()
    for p in install(ring):
        for op in p.ops:
            assert op.to_msg().datapath is None
