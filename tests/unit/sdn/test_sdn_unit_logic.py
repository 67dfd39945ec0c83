"""The control unit's worker logic (batching, failure isolation, replay then reconcile, acks)
against fake switches standing in for the OpenFlow connections."""

from __future__ import annotations

import types

from os_ken.ofproto import ofproto_v1_3_parser as parser
from sdn_ring import RING

from tandem.sdn.fake_table import FakeSwitch, FakeSwitchError
from tandem.sdn.intents import FlowSpec, flow_add, match_key, TrafficMatch, cookie_for
from tandem.sdn.paths import install_commands, remove_command
from tandem.sdn.state import FLOW_ADD, Op, Plan
from tandem.sdn.unit import ControlUnit, Job, UnitConfig
from tandem.v1 import commands_pb2 as c


class FakeChannel:
    """A SwitchChannel over a FakeSwitch: refused messages become OFPT_ERRORs by xid."""

    def __init__(self, sw: FakeSwitch) -> None:
        self.sw, self.dpid, self.ports, self.xid = sw, sw.dpid, {1, 2, 3}, 0
        self.errors: dict[int, str] = {}
        self.sent: list[Op] = []

    def send_ops(self, ops):
        xids = []
        for op in ops:
            self.xid += 1
            xids.append(self.xid)
            self.sent.append(op)
            try:
                self.sw.apply(op.to_msg())
            except FakeSwitchError as exc:
                self.errors[self.xid] = f"OFPT_ERROR {exc}"
        return xids

    def barrier(self, timeout=10.0):
        pass

    def take_errors(self, xids):
        return {x: self.errors.pop(x) for x in xids if x in self.errors}

    def flow_stats(self):
        return [flow_add(f) for f in self.sw.flows.values()]

    def meter_configs(self):
        return [types.SimpleNamespace(meter_id=m.meter_id, bands=[
            parser.OFPMeterBandDrop(rate=m.rate_kbps, burst_size=m.burst_kb)])
            for m in self.sw.meters.values()]

    def port_descs(self):
        return []


def make_unit(site="s1"):
    acks, acked = [], []
    unit = ControlUnit(UnitConfig(site, connect_wait=0.1),
                       publish=lambda kind, key, msg: acks.append(msg) if kind == "ack" else None,
                       on_acked=acked.append)
    dp = RING.dpids[site]
    unit.channels[dp] = FakeChannel(FakeSwitch(dp))
    return unit, acks, acked


def cmd(rid, gen=1, path=("l12", "l23"), site="s1", **kw):
    return install_commands(RING, reservation_id=rid, generation=gen, src="s1", link_path=path,
                            ipv4_src=kw.pop("src", "10.77.1.1"), ipv4_dst="10.77.3.1",
                            rate_kbps=kw.pop("rate", 1000), **kw)[site]


def test_a_refused_plan_stops_before_its_switch_over_and_others_go_on():
    unit, _, _ = make_unit()
    ch = unit.channels[1]
    bad = FlowSpec(1, 1000, match_key(2, TrafficMatch(ipv4_dst="10.0.0.1")), cookie_for("x", 1),
                   3, meter_id=99)  # no meter 99: the switch refuses it
    switch_over = FlowSpec(1, 1000, match_key(1, TrafficMatch(ipv4_dst="10.0.0.1")),
                           cookie_for("x", 1), 3)
    good = FlowSpec(1, 1000, match_key(2, TrafficMatch(ipv4_dst="10.0.0.2")), cookie_for("y", 1), 3)
    good2 = FlowSpec(1, 1000, match_key(1, TrafficMatch(ipv4_dst="10.0.0.2")), cookie_for("y", 1), 3)
    p_bad = Plan(phases=[[Op(FLOW_ADD, bad)], [Op(FLOW_ADD, switch_over)]])
    p_good = Plan(phases=[[Op(FLOW_ADD, good)], [Op(FLOW_ADD, good2)]])
    r_bad, r_good = unit.execute_many([p_bad, p_good])
    assert "UNKNOWN_METER" in r_bad.error and not r_good.error
    assert switch_over not in ch.sw.flows.values()  # never sent
    assert Op(FLOW_ADD, switch_over) not in ch.sent
    assert {good, good2} <= set(ch.sw.flows.values())
    assert r_good.confirmed_ms >= r_good.sent_ms >= 0


def test_commands_are_acknowledged_with_status_and_counts():
    unit, acks, acked = make_unit()
    jobs = [Job("command", cmd=cmd("a"), offset=0), Job("command", cmd=cmd("b", src="10.77.1.2"), offset=1)]
    bad = cmd("c")
    bad.install.match.ipv4_src = "not-an-ip"
    jobs.append(Job("command", cmd=bad, offset=2))
    unit._commands(jobs)
    by_id = {a.command_id: a for a in acks}
    assert by_id[jobs[0].cmd.command_id].status == c.ACK_STATUS_OK
    assert by_id[jobs[0].cmd.command_id].flows_added == 1
    assert by_id[jobs[0].cmd.command_id].meters_changed == 1
    assert by_id[bad.command_id].status == c.ACK_STATUS_FAILED
    assert "ipv4_src" in by_id[bad.command_id].error
    assert acked == [2]  # the highest offset of the batch, committed once its acks are out
    acks.clear()
    unit._commands([Job("command", cmd=cmd("a"), offset=3)])
    assert acks[0].status == c.ACK_STATUS_NOOP


def test_switch_not_connected_is_a_failure_not_silence():
    unit, acks, _ = make_unit()
    del unit.channels[1]
    unit._commands([Job("command", cmd=cmd("a"), offset=0)])
    assert acks[0].status == c.ACK_STATUS_FAILED and "not connected" in acks[0].error


def test_replay_folds_then_reconciles_then_acks_what_was_never_acked():
    unit, acks, _ = make_unit()
    ch = unit.channels[1]
    # the switch still has what was installed before the restart, plus a stray entry
    prior, _, _ = make_unit()
    prior.channels[1] = ch
    prior._commands([Job("command", cmd=cmd("a"), offset=0)])
    stray = FlowSpec(1, 1500, (("eth_type", 0x0800), ("in_port", 3)), cookie_for("zz", 1), 1)
    ch.sw.apply(flow_add(stray))
    ch.sent.clear()
    # replay: offset 0 was acknowledged (committed), offsets 1-2 were not
    unit._command(Job("command", cmd=cmd("a"), offset=0, replay=True, needs_ack=False))
    unit._command(Job("command", cmd=cmd("b", src="10.77.1.2"), offset=1, replay=True))
    unit._command(Job("command", cmd=remove_command("s1", "a"), offset=2, replay=True))
    assert not ch.sent  # nothing sent while replaying
    unit._replay_done()
    assert unit.caught_up.is_set()
    assert ch.sw.tables() == unit.intent.desired({1})  # exactly the intended state
    assert [a.command_id for a in acks] == [cmd("b").command_id, "a/rm0/s1"]
    assert all(a.status == c.ACK_STATUS_OK for a in acks)


def test_worker_batches_live_commands_but_keeps_each_reservations_order():
    import threading

    unit, acks, _ = make_unit()
    ch = unit.channels[1]
    install_a = cmd("a")
    remove_a = remove_command("s1", "a")
    install_b = cmd("b", src="10.77.1.2")
    unit.jobs.put(Job("batch", batch=[Job("command", cmd=install_a, offset=0),
                                      Job("command", cmd=install_b, offset=1),
                                      Job("command", cmd=remove_a, offset=2)]))
    unit.jobs.put(Job("stop"))
    t = threading.Thread(target=unit._worker)
    t.start()
    t.join(10)
    assert [a.command_id for a in acks] == [install_a.command_id, install_b.command_id,
                                             remove_a.command_id]
    assert all(a.status == c.ACK_STATUS_OK for a in acks)
    # a was installed then removed (in that order), b stays
    rids = {f.cookie for f in ch.sw.flows.values()}
    assert rids == {cookie_for("b", 1)} and len(ch.sw.meters) == 1
