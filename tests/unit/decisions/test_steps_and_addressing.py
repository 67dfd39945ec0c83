"""The one step plan (make-before-break order, site/link terms, per-workload matches) and the
address blocks it matches on."""

from __future__ import annotations

import ipaddress
import pickle
import random

import pytest

from tandem.addressing import POOL, AddressPoolExhausted, Blocks
from tandem.engine.decision import Decision, Kind, Reservation
from tandem.engine.workload import Demand, VmGroup, WorkloadRequest
from tandem.steps import (CREATE, DELETE, INSTALL, MIGRATE_OUT, POWER_ON, REMOVE, STEP_NAMES,
                          SWITCH, crossings, plan)
from tandem.v1.commands_pb2 import ComputeCommand as C


def request(wid: str = "w") -> WorkloadRequest:
    return WorkloadRequest(wid, (VmGroup("a", 2, 1, 1), VmGroup("b", 1, 1, 1)),
                           (Demand("d", "a", 10.0, to_group="b"),))


def placed(wid: str, a: str, b: str, sites: tuple[str, ...], links: tuple[str, ...],
           rev: int = 0) -> Decision:
    r = Reservation(f"{wid}/d/0" + (f".r{rev}" if rev else ""), wid, "d", sites, links, (), 10.0, 1.0)
    return Decision(Kind.PLACED if rev == 0 else Kind.REROUTED, wid, "t", "r1",
                    ((("a", a, 2)), ("b", b, 1)), (r,), revision=rev, request=request(wid))


def test_blocks_are_disjoint_aligned_and_reused_after_release() -> None:
    b = Blocks()
    one = ipaddress.ip_network(b.ensure("w1", "a", 2))
    big = ipaddress.ip_network(b.ensure("w2", "a", 600))  # 602 addresses: four /24s
    other = ipaddress.ip_network(b.ensure("w1", "b", 1))
    assert one.prefixlen == 24 and big.prefixlen == 22 and other.prefixlen == 24
    assert all(n.subnet_of(POOL) for n in (one, big, other))  # type: ignore[arg-type]
    assert not one.overlaps(big) and not one.overlaps(other) and not big.overlaps(other)
    assert int(big.network_address) % (4 * 256) == 0  # aligned
    assert b.address("w1", "a", 0) == str(one.network_address + 1)
    b.release("w1")
    assert b.ensure("w3", "x", 1) == str(one)  # lowest free first: deterministic
    with pytest.raises(ValueError):
        b.address("w3", "x", 254)


def _scan_reference(owned: dict[tuple[str, str], tuple[int, int]], n: int) -> int:
    """The allocation rule stated plainly: the lowest aligned run of n free /24s."""
    used = {u for s, k in owned.values() for u in range(s, s + k)}
    return next(s for s in range(0, 1 << 15, n) if not any(u in used for u in range(s, s + n)))


def test_blocks_allocate_exactly_the_lowest_aligned_free_run_and_roll_back() -> None:
    rng = random.Random(7)
    b = Blocks()
    for step in range(3000):
        wid = f"w{rng.randrange(300)}"
        if rng.random() < 0.45:
            b.release(wid)
        else:
            group, vms = rng.choice("abc"), rng.choice([1, 1, 1, 1, 100, 300, 700])
            n = Blocks.units_for(vms)
            have = b.owned.get((wid, group))
            expect = None if have and have[1] >= n else _scan_reference(
                {k: v for k, v in b.owned.items() if k != (wid, group)}, n)
            b.ensure(wid, group, vms)
            if expect is not None:
                assert b.owned[(wid, group)][0] == expect, step
        if step % 97 == 0:  # an input that fails halfway leaves the blocks as they were
            before = dict(b.owned)
            b.checkpoint()
            b.release(wid)
            b.ensure(wid, "z", 5)
            b.ensure("fresh", "a", 300)
            b.rollback()
            assert b.owned == before and b.used == {u for s, k in before.values()
                                                    for u in range(s, s + k)}
    assert pickle.loads(pickle.dumps(b)) == b  # snapshots keep only what is owned


def test_the_pool_can_run_out_and_says_which_group() -> None:
    b = Blocks()
    b.ensure("huge", "g", 256 * 32768 - 2)
    with pytest.raises(AddressPoolExhausted, match="group 'h' of workload 'w'"):
        b.ensure("w", "h", 1)


def test_a_placement_creates_vms_then_installs_transit_before_the_ingress() -> None:
    blocks = Blocks()
    new = placed("w", "ams", "par", ("ams", "fra", "par"), ("ams-fra", "fra-par"))
    for g, _, n in new.placements:
        blocks.ensure("w", g, n)
    steps = plan(None, new, blocks, "c", 0.0, "dec12345")
    assert [s.what for s in steps] == [STEP_NAMES[i] for i in (CREATE, INSTALL, SWITCH, POWER_ON)]
    assert {c.vm.vm_name for c in steps[0].compute} == {"w-a-0", "w-a-1", "w-b-0"}
    assert all(c.ipv4_address for c in steps[0].compute)
    # created powered off, powered on only once the ingress is switched over
    assert {c.action for c in steps[0].compute} == {C.ACTION_CREATE}
    assert {(c.vm.vm_name, c.site_id, c.action) for c in steps[3].compute} == {
        (c.vm.vm_name, c.site_id, C.ACTION_POWER_ON) for c in steps[0].compute}
    transit = {c.site_id: c.install for c in steps[1].sdn}
    assert set(transit) == {"fra", "par"} and not any(i.ingress for i in transit.values())
    assert (transit["fra"].crossing.in_link_id, transit["fra"].crossing.out_link_id) == (
        "ams-fra", "fra-par")
    assert (transit["par"].crossing.in_link_id, transit["par"].crossing.out_link_id) == (
        "fra-par", "")
    [ingress] = steps[2].sdn
    assert ingress.site_id == "ams" and ingress.install.ingress
    assert ingress.install.crossing.in_link_id == "" and ingress.install.crossing.out_link_id == "ams-fra"
    m = ingress.install.match
    assert m.ipv4_src == blocks.cidr("w", "a") and m.ipv4_dst == blocks.cidr("w", "b")
    assert not ingress.install.HasField("match") or not list(ingress.install.hops)  # no ports
    assert all(c.command_id.endswith("/dec12345") for s in steps for c in [*s.sdn, *s.compute])


def test_a_reroute_is_make_before_break_and_two_workloads_never_share_a_match() -> None:
    blocks = Blocks()
    old = placed("w", "ams", "par", ("ams", "fra", "par"), ("ams-fra", "fra-par"))
    other = placed("v", "ams", "par", ("ams", "fra", "par"), ("ams-fra", "fra-par"))
    for d in (old, other):
        for g, _, n in d.placements:
            blocks.ensure(d.workload_id, g, n)
    new = placed("w", "ams", "par", ("ams", "lon", "par"), ("ams-lon", "lon-par"), rev=1)
    steps = plan(old, new, blocks, "c", 0.0, "abc")
    assert [s.what for s in steps] == [STEP_NAMES[i] for i in (INSTALL, SWITCH, REMOVE)]
    assert [c.site_id for c in steps[2].sdn] == ["ams", "fra", "par"]
    assert all(c.remove.reservation_id == "w/d/0" for c in steps[2].sdn)
    assert all(c.install.generation == 1 for c in [*steps[0].sdn, *steps[1].sdn])
    [mine] = plan(None, other, blocks, "c", 0.0, "x")[2].sdn
    assert mine.install.match.ipv4_src != steps[1].sdn[0].install.match.ipv4_src


def test_a_release_removes_paths_then_deletes_vms_and_a_rejection_does_nothing() -> None:
    blocks = Blocks()
    old = placed("w", "ams", "par", ("ams", "par"), ("ams-par",))
    for g, _, n in old.placements:
        blocks.ensure("w", g, n)
    rel = Decision(Kind.RELEASED, "w", "t", "r2")
    steps = plan(old, rel, blocks, "c", 0.0, "z")
    assert [s.what for s in steps] == [STEP_NAMES[REMOVE], STEP_NAMES[DELETE]]
    assert len(steps[1].compute) == 3
    assert plan(old, Decision(Kind.REJECTED, "w"), blocks, "c", 0.0, "z") == []


def test_a_migration_powers_the_new_copy_on_before_the_old_one_leaves() -> None:
    blocks = Blocks()
    old = placed("w", "ams", "par", ("ams", "par"), ("ams-par",))
    for g, _, n in old.placements:
        blocks.ensure("w", g, n)
    moved = Decision(Kind.MIGRATED, "w", "t", "r1", (("a", "fra", 2), ("b", "par", 1)),
                     (Reservation("w/d/0.r1", "w", "d", ("fra", "par"), ("fra-par",), (), 10.0,
                                  1.0),), revision=1, request=request("w"))
    steps = plan(old, moved, blocks, "c", 0.0, "m")
    names = [s.what for s in steps]
    assert names == [STEP_NAMES[i] for i in (CREATE, INSTALL, SWITCH, POWER_ON, MIGRATE_OUT,
                                             REMOVE)]
    ins = {(c.vm.vm_name, c.site_id, c.peer_site_id, c.action) for c in steps[0].compute}
    assert ins == {("w-a-0", "fra", "ams", C.ACTION_MIGRATE_IN),
                   ("w-a-1", "fra", "ams", C.ACTION_MIGRATE_IN)}
    assert {(c.vm.vm_name, c.site_id) for c in steps[3].compute} == {("w-a-0", "fra"),
                                                                      ("w-a-1", "fra")}
    assert {(c.vm.vm_name, c.site_id, c.action) for c in steps[4].compute} == {
        ("w-a-0", "ams", C.ACTION_MIGRATE_OUT), ("w-a-1", "ams", C.ACTION_MIGRATE_OUT)}
    # the VM that stayed is neither re-created nor powered on again
    assert not any(c.vm.vm_name == "w-b-0" for s in steps for c in s.compute)


def test_crossings_walk_the_path() -> None:
    r = Reservation("r", "w", "d", ("a", "b", "c", "d"), ("ab", "bc", "cd"), (), 1.0, 1.0)
    assert crossings(r) == [("a", "", "ab"), ("b", "ab", "bc"), ("c", "bc", "cd"), ("d", "cd", "")]
