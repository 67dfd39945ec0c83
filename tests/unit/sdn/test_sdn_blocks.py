"""Traffic that belongs to one workload: matches on address blocks (CIDR), priorities that let
the more specific entry win, reconciliation of masked entries, and reservations of one
workload that share a match (a reroute under a new reservation id) — on fake switches."""

from __future__ import annotations

import itertools
import random

import pytest
from sdn_ring import FakeWan

from os_ken.ofproto import ofproto_v1_3_parser as parser

from tandem.sdn import wire
from tandem.sdn.fake_table import FakeSwitch, FakeSwitchError
from tandem.sdn.intents import (
    PRIO_BASE, FlowSpec, TrafficMatch, cookie_for, flow_add, match_key, normalise_match,
    priority_for,
)
from tandem.sdn.paths import crossing_commands, remove_command
from tandem.sdn.reconcile import diff
from tandem.sdn.state import NOOP, OK, SiteIntent

VIA_S2 = (["s1", "s2", "s3"], ["l12", "l23"])
VIA_S4 = (["s1", "s4", "s3"], ["l41", "l34"])


def reserve(wan: FakeWan, rid: str, wl: str, src: str, dst: str, path=VIA_S2, rate=1000,
            gen=1):
    sites, links = path
    cmds = crossing_commands(reservation_id=rid, generation=gen, sites=sites, links=links,
                             workload_id=wl, ipv4_src=src, ipv4_dst=dst, rate_kbps=rate)
    plans = [wan.send(cmds[s]) for s in reversed(sites)]  # egress first, ingress last
    assert all(p.status in (OK, NOOP) for p in plans), [p.reason for p in plans]
    return plans


def pkt(src: str, dst: str) -> dict:
    return {"eth_type": 0x0800, "ipv4_src": src, "ipv4_dst": dst, "ip_proto": 17}


def meter_rate(wan: FakeWan, trail) -> int:
    return wan.net.switch(trail[0][0]).meters[trail[0][3]].rate_kbps


def test_two_workloads_between_the_same_sites_keep_their_own_entries_and_meters():
    wan = FakeWan()
    reserve(wan, "w1/d1", "w1", "10.128.1.0/24", "10.128.2.0/24", rate=3000)
    reserve(wan, "w2/d1", "w2", "10.128.3.0/24", "10.128.4.0/24", rate=7000)
    for src, dst, rate in (("10.128.1.5", "10.128.2.9", 3000), ("10.128.3.5", "10.128.4.9", 7000)):
        trail, exit_ = wan.walk("s1", pkt(src, dst))
        assert exit_ == (3, 1)
        assert meter_rate(wan, trail) == rate        # each policed by its own meter
    # neither block crosses into the other's reservation, nor does the hosts' traffic
    assert wan.walk("s1", pkt("10.128.1.5", "10.128.4.9"))[1] is None
    assert wan.walk("s1", pkt("10.77.1.1", "10.77.3.1"))[1] is None
    # removing one leaves the other forwarding at its rate
    for s in VIA_S2[0]:
        assert wan.send(remove_command(s, "w1/d1")).status == OK
    assert wan.walk("s1", pkt("10.128.1.5", "10.128.2.9"))[1] is None
    trail, exit_ = wan.walk("s1", pkt("10.128.3.5", "10.128.4.9"))
    assert exit_ == (3, 1) and meter_rate(wan, trail) == 7000
    assert len(wan.net.switch(1).meters) == 1


def test_the_more_specific_entry_wins_whatever_the_install_order():
    for order in ([0, 1], [1, 0]):
        wan = FakeWan()
        specs = [("broad", "10.128.0.0/16", VIA_S2), ("narrow", "10.128.7.0/24", VIA_S4)]
        for i in order:
            rid, src, path = specs[i]
            reserve(wan, rid, rid, src, "10.128.200.0/24", path=path)
        inside = [dp for dp, *_ in wan.walk("s1", pkt("10.128.7.1", "10.128.200.3"))[0]]
        outside = [dp for dp, *_ in wan.walk("s1", pkt("10.128.8.1", "10.128.200.3"))[0]]
        assert inside == [1, 4, 3] and outside == [1, 2, 3], order


def test_priority_is_higher_for_every_strictly_nested_match():
    rnd = random.Random(11)
    fields = []
    for _ in range(300):
        a = rnd.randrange(1 << 32)
        plen = rnd.choice([0, 8, 16, 20, 24, 27, 32])
        fields.append(f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}/{plen}")

    def narrower(p: str) -> str:
        addr, plen = p.split("/")
        return f"{addr}/{min(32, int(plen) + 3)}"

    for src, dst in zip(fields, reversed(fields)):
        m = TrafficMatch(src, dst)
        for inner in (TrafficMatch(narrower(src), dst), TrafficMatch(src, narrower(dst)),
                      TrafficMatch(src, dst, ip_proto=17), TrafficMatch(src, dst, dscp=46)):
            if match_key(1, inner) != match_key(1, m):
                assert priority_for(inner) > priority_for(m), (inner, m)
    assert priority_for(TrafficMatch("10.77.1.1", "10.77.3.1")) == PRIO_BASE + 64
    assert priority_for(TrafficMatch("10.128.1.0/24", "10.128.2.0/24")) == PRIO_BASE + 48
    assert priority_for(TrafficMatch("0.0.0.0/0")) == PRIO_BASE  # /0 matches anything


def test_blocks_are_normalised_as_the_switch_reports_them():
    assert dict(match_key(1, TrafficMatch("10.128.3.77/24")))["ipv4_src"] == \
        ("10.128.3.0", "255.255.255.0")
    assert dict(match_key(1, TrafficMatch("10.1.2.3/32")))["ipv4_src"] == "10.1.2.3"
    assert "ipv4_dst" not in dict(match_key(1, TrafficMatch(ipv4_dst="0.0.0.0/0")))
    with pytest.raises(ValueError, match="match.ipv4_dst: bad IPv4"):
        match_key(1, TrafficMatch(ipv4_dst="10.1.0.0/33"))
    # what a switch may answer in its flow statistics → the same key
    want = match_key(2, TrafficMatch("10.128.3.0/24", "10.77.3.1"))
    for reported in (
        [("in_port", 2), ("eth_type", 0x800), ("ipv4_src", ("10.128.3.0", "255.255.255.0")),
         ("ipv4_dst", "10.77.3.1")],
        [("eth_type", 0x800), ("in_port", 2), ("ipv4_src", ("10.128.3.9", "255.255.255.0")),
         ("ipv4_dst", ("10.77.3.1", "255.255.255.255"))],
    ):
        assert normalise_match(reported) == want
    assert normalise_match([("ipv4_src", ("10.0.0.0", "0.0.0.0"))]) == ()


def _synced(st: SiteIntent) -> FakeSwitch:
    sw = FakeSwitch(1)
    for op in diff(st.desired({1}), sw.tables()).plan.ops:
        sw.apply(op.to_msg())
    return sw


def test_reconciliation_compares_masked_entries():
    wan = FakeWan()
    reserve(wan, "w1/d1", "w1", "10.128.1.0/24", "10.128.2.0/24", rate=3000)
    reserve(wan, "w2/d1", "w2", "10.128.3.0/27", "", rate=7000)
    st = wan.units["s1"]
    sw = wan.net.switch(1)
    assert not diff(st.desired({1}), sw.tables()).plan.ops   # in sync: nothing to repair
    # the switch lost one masked entry and carries a stray masked one of ours
    victim = next(f for f in sw.flows.values() if dict(f.match).get("ipv4_src") ==
                  ("10.128.3.0", "255.255.255.224"))
    del sw.flows[(victim.priority, victim.match)]
    stray_match = match_key(1, TrafficMatch("10.128.9.0/24"))
    sw.apply(flow_add(FlowSpec(1, 1024, stray_match, cookie_for("gone", 1), 2)))
    d = diff(st.desired({1}), sw.tables())
    assert sorted(op.kind for op in d.plan.ops) == ["flow_add", "flow_del"]
    assert [op.spec for op in d.plan.ops if op.kind == "flow_add"] == [victim]
    for op in d.plan.ops:
        sw.apply(op.to_msg())
    assert sw.tables() == st.desired({1})
    # and as a switch's flow statistics carry them: OXM bytes parsed by os-ken, normalised
    for f in sw.flows.values():
        parsed = parser.OFPMatch.parser(wire.encode_match(f.match), 0)
        assert normalise_match(parsed.items()) == f.match


def test_a_reroute_under_a_new_reservation_id_with_the_same_match_switches_over_and_back():
    """The core reroutes a demand by installing a new reservation (same workload blocks, new
    id) and then removing the old one; if the new one is rolled back, the old entry returns."""
    wan = FakeWan()
    src, dst = "10.128.1.0/24", "10.128.2.0/24"
    reserve(wan, "w1/d1", "w1", src, dst, rate=3000)
    p = pkt("10.128.1.5", "10.128.2.9")
    assert [dp for dp, *_ in wan.walk("s1", p)[0]] == [1, 2, 3]
    reserve(wan, "w1/d1.r2", "w1", src, dst, path=VIA_S4, rate=3000)
    trail, exit_ = wan.walk("s1", p)
    assert [dp for dp, *_ in trail] == [1, 4, 3] and exit_ == (3, 1)
    assert trail[0][3] == wan.units["s1"].meters[1]["w1/d1.r2"]  # the new reservation's meter
    # rolled back: the new reservation goes, the old one's entry is put back at the ingress
    plan = wan.send(remove_command("s1", "w1/d1.r2"))
    assert "flow_add" in [op.kind for op in plan.ops]
    assert [dp for dp, *_ in wan.walk("s1", p)[0]] == [1, 2, 3]
    assert not wan.reconcile("s1").plan.ops                   # and that is what it intends
    # or carried through: the old one goes, the new one's entry is not touched
    reserve(wan, "w1/d1.r3", "w1", src, dst, path=VIA_S4, rate=3000)
    for s in VIA_S2[0]:
        wan.send(remove_command(s, "w1/d1"))
    assert [dp for dp, *_ in wan.walk("s1", p)[0]] == [1, 4, 3]
    assert not wan.net.switch(2).meters and len(wan.net.switch(2).flows) == 1  # LLDP only
    for s in wan.units:
        assert not wan.reconcile(s).plan.ops


def test_overlapping_entries_of_one_priority_are_an_error_of_the_fake_table():
    sw = FakeSwitch(1)
    for src in ("10.128.0.0/17", "10.128.0.0/18"):
        m = match_key(1, TrafficMatch(src))
        sw.apply(flow_add(FlowSpec(1, 1500, m, cookie_for(src, 1), 2)))
    with pytest.raises(FakeSwitchError, match="matches two entries of priority 1500"):
        sw.lookup(1, pkt("10.128.0.1", "10.1.1.1"))
    assert sw.lookup(1, pkt("10.128.64.1", "10.1.1.1")) is not None  # only the /17 matches


@pytest.mark.parametrize("a,b", list(itertools.combinations(
    ["10.128.1.0/24", "10.128.2.0/24", "10.128.2.128/25", "10.129.0.0/16"], 2)))
def test_installing_and_removing_block_reservations_leaves_tables_as_they_were(a, b):
    wan = FakeWan()
    before = {dp: sw.tables() for dp, sw in wan.net.switches.items()}
    reserve(wan, "ra", "wa", a, "10.200.0.0/24", rate=1000)
    reserve(wan, "rb", "wb", b, "10.200.0.0/24", path=VIA_S4, rate=2000)
    for rid, path in (("ra", VIA_S2), ("rb", VIA_S4)):
        for s in path[0]:
            assert wan.send(remove_command(s, rid)).status == OK
    assert {dp: sw.tables() for dp, sw in wan.net.switches.items()} == before
