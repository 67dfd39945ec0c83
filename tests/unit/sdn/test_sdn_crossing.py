"""Crossings (links, the core's terms) → this site's switch ports; failures named, never half
installed; acknowledgements keyed by workload; the bounded wait for the inventory at start."""

from __future__ import annotations

import threading

import pytest
from sdn_ring import RING, FakeWan
from test_sdn_unit_logic import make_unit

from tandem.events import new_meta
from tandem.sdn.crossing import CrossingError, PortBook
from tandem.sdn.intents import Hop
from tandem.sdn.paths import crossing_commands, remove_command, site_crossings
from tandem.sdn.state import OK, REJECTED
from tandem.sdn.unit import Job
from tandem.v1 import commands_pb2 as c
from tandem.v1 import inventory_pb2 as inv

PKT = {"eth_type": 0x0800, "ipv4_src": "10.128.1.7", "ipv4_dst": "10.128.2.9", "ip_proto": 17}


def site_ev(site: str, dpid: int, attach: int) -> inv.InventoryEvent:
    return inv.InventoryEvent(meta=new_meta("test"), site=inv.Site(
        site_id=site, datapath_id=dpid, attachment_port=attach))


def link_ev(lid: str, a: str, pa: int, b: str, pb: int) -> inv.InventoryEvent:
    return inv.InventoryEvent(meta=new_meta("test"), link=inv.Link(
        link_id=lid, site_a=a, site_b=b, port_a=pa, port_b=pb))


def removed_link(lid: str) -> inv.InventoryEvent:
    return inv.InventoryEvent(meta=new_meta("test"), removed=inv.ElementRemoved(
        kind=inv.ElementRemoved.KIND_LINK, id=lid))


def test_site_path_becomes_per_site_crossings():
    assert site_crossings(["s1", "s2", "s3"], ["l12", "l23"]) == {
        "s1": ("", "l12"), "s2": ("l12", "l23"), "s3": ("l23", "")}
    with pytest.raises(ValueError, match="needs 2 links"):
        site_crossings(["s1", "s2", "s3"], ["l12"])
    with pytest.raises(ValueError, match="twice"):
        site_crossings(["s1", "s2", "s1"], ["l12", "l12"])


def test_crossings_resolve_from_the_layout_and_the_inventory_overrides_it():
    book = PortBook("s2")
    book.learn_layout(RING)
    assert book.resolve("l12", "l23") == Hop(2, 2, 3)        # transit
    assert book.resolve("", "l23") == Hop(2, 1, 3)           # ingress: from the attachment
    assert book.resolve("l12", "") == Hop(2, 2, 1)           # egress: to the attachment
    book.learn_event(site_ev("s2", 0x22, 7))                 # inventory: dpid, attachment
    book.learn_event(link_ev("l23", "s2", 9, "s3", 2))       # l23 moved to port 9
    book.learn_event(site_ev("s3", 0x33, 5))                 # another site's: ignored
    assert book.resolve("", "l23") == Hop(0x22, 7, 9)
    assert book.resolve("l12", "") == Hop(0x22, 2, 7)        # l12 still from the layout


def test_crossing_failures_name_the_link_and_what_is_missing():
    book = PortBook("s2")
    book.learn_layout(RING)
    cases = [
        (("nope", ""), "crossing.in_link_id 'nope': link is not in the inventory"),
        (("l12", "l34"), "crossing.out_link_id 'l34': the link joins s3 and s4, not this site s2"),
        (("", ""), "neither in_link_id nor out_link_id"),
        (("l12", "l12"), "both 'l12'"),
    ]
    for (a, b), text in cases:
        with pytest.raises(CrossingError, match=text):
            book.resolve(a, b)
    book.learn_event(link_ev("l23", "s2", 0, "s3", 2))       # declared without ports:
    assert book.resolve("l12", "l23") == Hop(2, 2, 3)        # the layout still knows
    book.learn_event(link_ev("l25", "s2", 0, "s5", 2))       # ... but not this one
    with pytest.raises(CrossingError, match=r"'l25': no switch port known for it at s2 yet "
                                            r"\(inventory port_a is 0 or not read, and no "
                                            r"WAN layout gives it\)"):
        book.resolve("l12", "l25")
    book.learn_event(removed_link("l12"))                    # gone, even though the layout has it
    with pytest.raises(CrossingError, match="'l12': link was removed from the inventory"):
        book.resolve("l12", "")
    bare = PortBook("s2")                                    # no layout, inventory links only
    bare.learn_event(link_ev("l12", "s1", 2, "s2", 2))
    with pytest.raises(CrossingError, match="no attachment port"):
        bare.resolve("l12", "")
    with pytest.raises(CrossingError, match="no datapath id"):
        bare.datapath_id()


def test_a_path_given_by_crossings_forwards_like_one_given_by_ports():
    wan = FakeWan()
    cmds = crossing_commands(reservation_id="r1", generation=1, sites=["s1", "s2", "s3"],
                             links=["l12", "l23"], workload_id="w1", ipv4_src="10.128.1.0/24",
                             ipv4_dst="10.128.2.0/24", rate_kbps=5000)
    plans = [wan.send(cmds[s]) for s in ("s3", "s2", "s1")]   # egress first, ingress last
    assert [p.status for p in plans] == [OK, OK, OK]
    trail, exit_ = wan.walk("s1", PKT)
    assert exit_ == (3, 1) and [(dp, out) for dp, _, out, _ in trail] == [(1, 2), (2, 3), (3, 1)]
    assert wan.net.switch(1).meters[trail[0][3]].rate_kbps == 5000  # ingress derived: no link in


def test_an_unresolvable_crossing_is_rejected_whole_and_names_the_link():
    wan = FakeWan()
    cmd = crossing_commands(reservation_id="r1", generation=1, sites=["s1", "s2"],
                            links=["l12"], ipv4_src="10.128.1.0/24")["s2"]
    cmd.install.crossing.in_link_id = "l99"
    before = wan.net.switch(2).tables()
    plan = wan.send(cmd)
    assert plan.status == REJECTED and "'l99'" in plan.reason and "inventory" in plan.reason
    assert wan.net.switch(2).tables() == before and "r1" not in wan.units["s2"].paths
    # both hops and a crossing: ambiguous, refused
    cmd.install.crossing.in_link_id = "l12"
    cmd.install.hops.add(datapath_id=2, in_port=2, out_port=1)
    assert "both crossing" in wan.send(cmd).reason
    # ingress flag contradicting the crossing
    del cmd.install.hops[:]
    cmd.install.ingress = True
    assert "install.ingress is set" in wan.send(cmd).reason


def _install(site="s1", rid="r1", wl="w1", links=("l12", "l23"), sites=("s1", "s2", "s3")):
    return crossing_commands(reservation_id=rid, generation=1, sites=list(sites),
                             links=list(links), workload_id=wl, ipv4_src="10.128.1.0/24",
                             ipv4_dst="10.128.2.0/24", rate_kbps=1000)[site]


def keyed_unit(site="s1"):
    unit, _, acked = make_unit(site)
    keyed: list[tuple[str, c.SdnAck]] = []
    unit.publish = lambda kind, key, msg: keyed.append((key, msg)) if kind == "ack" else None
    unit.learn_layout(RING)
    unit.inventory_ready.set()
    return unit, keyed, acked


def test_acks_carry_workload_and_reservation_and_are_keyed_by_workload():
    unit, keyed, _ = keyed_unit()
    hand = _install(rid="r-hand", wl="")
    hand.install.match.ipv4_src = "10.128.9.0/24"
    unit._commands([Job("command", cmd=_install(), offset=0),
                    Job("command", cmd=hand, offset=1)])
    unit._commands([Job("command", cmd=remove_command("s1", "r1"), offset=2)])
    (k1, a1), (k2, a2), (k3, a3) = keyed
    assert (k1, a1.workload_id, a1.reservation_id, a1.status) == ("w1", "w1", "r1",
                                                                  c.ACK_STATUS_OK)
    assert (k2, a2.workload_id) == ("s1", "")  # a hand tool's command: keyed by site
    # a RemovePath names no workload: the unit keys it by the reservation's workload
    assert (k3, a3.workload_id, a3.reservation_id, a3.status) == ("w1", "w1", "r1",
                                                                  c.ACK_STATUS_OK)


def test_a_failed_crossing_is_acknowledged_failed_naming_the_link_and_installs_nothing():
    unit, keyed, acked = keyed_unit("s2")
    cmd = _install(site="s2", links=("l12", "l23x"))
    unit._commands([Job("command", cmd=cmd, offset=5)])
    key, ack = keyed[0]
    assert ack.status == c.ACK_STATUS_FAILED and key == "w1" and ack.reservation_id == "r1"
    assert "crossing.out_link_id 'l23x'" in ack.error and "not in the inventory" in ack.error
    assert not unit.channels[2].sent and acked == [5]
    # its removal (the executor rolls back) is keyed by the workload too
    unit._commands([Job("command", cmd=remove_command("s2", "r1"), offset=6)])
    assert keyed[1][0] == "w1" and keyed[1][1].status == c.ACK_STATUS_NOOP


def test_at_start_a_crossing_waits_for_the_inventory_then_resolves():
    unit = make_unit("s2")[0]
    keyed: list = []
    unit.publish = lambda kind, key, msg: keyed.append((key, msg)) if kind == "ack" else None
    cmd = _install(site="s2")          # no layout, nothing read yet: l12/l23 unknown
    worker = threading.Thread(target=unit._commands, args=([Job("command", cmd=cmd, offset=0)],))
    worker.start()
    assert unit.waiting_for_inventory.wait(10)
    assert not keyed                   # held back, not refused
    for ev in (site_ev("s2", 2, 1), link_ev("l12", "s1", 2, "s2", 2),
               link_ev("l23", "s2", 3, "s3", 2)):
        unit.learn_inventory(ev, {})
    unit.inventory_ready.set()         # what the Kafka side does once it read to the end
    worker.join(10)
    assert [a.status for _, a in keyed] == [c.ACK_STATUS_OK]
    [entry] = unit.channels[2].sw.flows.values()
    assert (dict(entry.match)["in_port"], entry.out_port) == (2, 3)


def test_the_wait_for_the_inventory_is_bounded_and_the_failure_says_so():
    unit, _, _ = make_unit("s2")
    unit._inventory_deadline = 0.0     # the unit started long ago; the inventory never came
    keyed: list = []
    unit.publish = lambda kind, key, msg: keyed.append(msg) if kind == "ack" else None
    unit._commands([Job("command", cmd=_install(site="s2"), offset=0)])
    assert keyed[0].status == c.ACK_STATUS_FAILED
    assert "'l12'" in keyed[0].error and "inventory was not read within" in keyed[0].error
