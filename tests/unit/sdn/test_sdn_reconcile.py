"""Reconciliation repairs only the difference between intended and actual tables."""

from __future__ import annotations

from sdn_ring import RING

from tandem.sdn.fake_table import FakeSwitch
from tandem.sdn.intents import FlowSpec, MeterSpec, flow_add, meter_mod
from tandem.sdn.paths import install_commands, remove_command
from tandem.sdn.reconcile import diff
from tandem.sdn.state import SiteIntent
from os_ken.ofproto import ofproto_v1_3 as ofp

LOG = [
    install_commands(RING, reservation_id=f"r{i}", generation=1, src="s1",
                     link_path=("l12", "l23"), ipv4_src=f"10.77.1.{i}", ipv4_dst="10.77.3.1",
                     rate_kbps=1000 * i)["s1"]
    for i in range(1, 6)
] + [remove_command("s1", "r2")]


def fold(log):
    st = SiteIntent()
    for cmd in log:
        st.apply_command(cmd)
    return st


def synced_switch(st: SiteIntent) -> FakeSwitch:
    sw = FakeSwitch(1)
    for op in diff(st.desired({1}), sw.tables()).plan.ops:
        sw.apply(op.to_msg())
    return sw


def test_replaying_the_log_rebuilds_the_same_intended_state():
    a, b = fold(LOG), fold(list(LOG))
    assert a.desired({1}) == b.desired({1})
    assert a.meters == b.meters
    # meter id of the removed reservation was freed and is reused by the next one
    st = fold(LOG + [install_commands(RING, reservation_id="r9", generation=1, src="s1",
                                      link_path=("l12", "l23"), ipv4_src="10.77.1.9",
                                      rate_kbps=9)["s1"]])
    assert "r2" not in a.meters[1] and st.meters[1]["r9"] == 2


def test_in_sync_switch_needs_no_repair():
    st = fold(LOG)
    sw = synced_switch(st)
    assert sw.tables() == st.desired({1})
    assert not diff(st.desired({1}), sw.tables()).plan.ops


def test_repairs_only_what_differs_and_leaves_foreign_entries():
    st = fold(LOG)
    sw = synced_switch(st)
    desired = st.desired({1})
    flows = sorted(desired.flows.values(), key=repr)
    victim = next(f for f in flows if f.priority < 65000)
    del sw.flows[(victim.priority, victim.match)]                       # lost entry
    meter = next(iter(sw.meters.values()))
    sw.apply(meter_mod(MeterSpec(1, meter.meter_id, 1, 16), ofp.OFPMC_MODIFY))  # wrong rate
    stray = FlowSpec(1, 1500, (("eth_type", 0x0800), ("in_port", 9)), flows[0].cookie, 3)
    sw.apply(flow_add(stray))                                            # ours, not intended
    foreign = FlowSpec(1, 10, (("in_port", 7),), 0x1234, 1)
    sw.apply(flow_add(foreign))                                          # not ours
    sw.apply(meter_mod(MeterSpec(1, 77, 5, 16), ofp.OFPMC_ADD))          # meter nobody intends

    d = diff(desired, sw.tables())
    kinds = sorted(op.kind for op in d.plan.ops)
    assert kinds == ["flow_add", "flow_del", "meter_del", "meter_mod"]
    assert d.foreign_flows == 1
    for op in d.plan.ops:
        sw.apply(op.to_msg())
    t = sw.tables()
    assert t.meters == desired.meters
    assert {k: v for k, v in t.flows.items() if k != foreign.key} == desired.flows
    assert foreign.key in t.flows
    # meters are repaired before flows are re-added, deletes come last
    order = [op.kind for op in d.plan.ops]
    assert order.index("meter_mod") < order.index("flow_add") < order.index("flow_del")
