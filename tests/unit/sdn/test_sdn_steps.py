"""The core's step plan (`tandem.steps`, the one make-before-break order) carried out on fake
switches by per-site units: traffic is never lost while a workload's path changes."""

from __future__ import annotations

import ipaddress

from sdn_ring import RING, FakeWan

from tandem.addressing import Blocks
from tandem.engine.decision import Decision, Kind, Reservation
from tandem.engine.workload import Demand, VmGroup, WorkloadRequest
from tandem.sdn.state import NOOP, OK
from tandem.steps import plan

REQUEST = WorkloadRequest("w", (VmGroup("a", 1, 1, 1), VmGroup("b", 1, 1, 1)),
                          (Demand("d", "a", 5.0, to_group="b"),))


def decision(sites: tuple[str, ...], links: tuple[str, ...], rev: int) -> Decision:
    r = Reservation("w/d/0" + (f".r{rev}" if rev else ""), "w", "d", sites, links, (), 5.0, 1.0)
    return Decision(Kind.PLACED if rev == 0 else Kind.REROUTED, "w", "t", "r1",
                    (("a", "s1", 1), ("b", "s3", 1)), (r,), revision=rev, request=REQUEST)


def carry_out(wan: FakeWan, steps) -> int:
    sent = 0
    for step in steps:
        for cmd in step.sdn:
            assert wan.send(cmd).status in (OK, NOOP), cmd
            sent += 1
    return sent


def test_a_reroute_by_the_step_plan_is_make_before_break_at_every_message():
    blocks = Blocks()
    a, b = blocks.ensure("w", "a", 1), blocks.ensure("w", "b", 1)
    pkt = {"eth_type": 0x0800, "ipv4_src": str(ipaddress.ip_network(a)[1]),
           "ipv4_dst": str(ipaddress.ip_network(b)[1]), "ip_proto": 17}
    wan = FakeWan()
    old = decision(("s1", "s2", "s3"), ("l12", "l23"), 0)
    carry_out(wan, plan(None, old, blocks, "c", 0.0, "d0"))
    assert [dp for dp, *_ in wan.walk("s1", pkt)[0]] == [1, 2, 3]
    checked = []

    def check() -> None:
        trail, exit_ = wan.walk("s1", pkt)
        checked.append([dp for dp, *_ in trail])
        assert exit_ == (3, RING.host_port), trail    # always delivered ...
        assert trail[0][3]                             # ... and policed where it enters

    wan.after_each_msg = check
    new = decision(("s1", "s4", "s3"), ("l41", "l34"), 1)
    sent = carry_out(wan, plan(old, new, blocks, "c", 0.0, "d1"))
    assert sent == 6 and len(checked) >= 6          # every message of the reroute was checked
    assert checked[-1] == [1, 4, 3]
    # the old path's entries and meter are gone: s2 keeps only its infrastructure entry
    s2 = wan.net.switch(2)
    assert [f.priority for f in s2.flows.values()] == [65000] and not s2.meters
