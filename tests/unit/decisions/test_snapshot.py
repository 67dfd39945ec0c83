"""A decider restored from a snapshot (engine state + chained dedupe deltas) decides exactly as
the decider it was taken from: the same outputs, byte for byte, for every later input."""

from __future__ import annotations

import time

import pytest

from tandem.decider import Decider
from tandem.events import new_meta
from tandem.services.demo_data import demo_federation
from tandem.snapshot import SnapshotError, encode_state, fingerprint, restore, take_delta
from tandem.v1 import decider_pb2, inventory_pb2 as K, link_state_pb2 as L, workload_pb2 as W

NOW = time.time()



def wrap(ev: object) -> bytes:
    which = {W.RequestEvent: "request", K.InventoryEvent: "inventory",
             L.LinkStateEvent: "link_state"}[type(ev)]
    return decider_pb2.DeciderInput(meta=new_meta("test", at=NOW - 100),
                                    **{which: ev}).SerializeToString()


def inputs() -> list[bytes]:
    global NOW
    NOW = time.time()  # read when the inputs are made (the suite may run for minutes before)
    out = [wrap(ev) for ev in demo_federation()]
    for i in range(60):
        if i % 7 == 6:
            ev = W.RequestEvent(meta=new_meta("t", at=NOW - 90 + i), request_id=f"rel-{i}",
                                release=W.ReleaseRequest(workload_id=f"w{i - 3}"))
        else:
            ev = W.RequestEvent(meta=new_meta("t", at=NOW - 90 + i), request_id=f"r{i}",
                                place=W.WorkloadRequest(
                tenant="t", workload_id=f"w{i}", priority=W.PRIORITY_CLASS_STANDARD,
                groups=[W.VmGroup(group_id="a", count=1, vcpus=2, memory_gib=4),
                        W.VmGroup(group_id="b", count=2, vcpus=1, memory_gib=2)],
                demands=[W.TrafficDemand(demand_id="d", from_group="a", to_group="b",
                                         bandwidth_mbps=50 + 10 * i, max_latency_ms=40)],
                rules=W.Rules(anti_affinity=[W.AntiAffinity(group_ids=["a", "b"])])))
        if i in (12, 40, 50):  # held for an approval: approved, rejected, still held
            ev.place.approval.required = True
        out.append(wrap(ev))
        if i in (20, 44):
            out.append(wrap(W.RequestEvent(
                meta=new_meta("t", at=NOW - 90 + i), request_id=f"verdict-{i}",
                approval=W.ApprovalVerdict(workload_id=f"w{12 if i == 20 else 40}",
                                           approve=i == 20, by="cab"))))
        if i == 30:
            out.append(wrap(L.LinkStateEvent(meta=new_meta("t", at=NOW - 60), link_id="ams-fra",
                                             state=L.OPER_STATE_DOWN, cause="cut")))
        if i == 45:
            out.append(wrap(L.LinkStateEvent(meta=new_meta("t", at=NOW - 45), link_id="ams-fra",
                                             state=L.OPER_STATE_UP, cause="mended")))
    out.append(out[20])  # a repeated input: ignored by both
    return out


def outputs(d: Decider, records: list[bytes]) -> list[bytes]:
    res = []
    for r in records:
        o = d.fold_record(r, NOW)
        res.append(b"|".join(m.SerializeToString(deterministic=True)
                             for m in [*o.decisions, *o.statuses, *o.alarms, *o.approvals])
                   + (o.invalid.reason.encode() if o.invalid else b""))
    return res


@pytest.mark.parametrize("cuts", [(10,), (25, 40), (7, 33, 50, 60)])
def test_restored_decider_decides_identically(cuts: tuple[int, ...]) -> None:
    records = inputs()
    full = Decider()
    expected = outputs(full, records)
    d = Decider()
    deltas: list[bytes] = []
    start = 0
    state = b""
    for cut in cuts:
        outputs(d, records[start:cut])
        deltas.append(take_delta(d))
        state = encode_state(d)
        start = cut
    back = restore(state, deltas)
    assert fingerprint(back) == fingerprint(d)
    assert outputs(back, records[start:]) == expected[start:]
    assert fingerprint(back) == fingerprint(full)


def test_the_dedupe_maps_survive_the_chain() -> None:
    records = inputs()
    d = Decider()
    outputs(d, records[:30])
    first = take_delta(d)
    outputs(d, records[30:50])
    second = take_delta(d)
    back = restore(encode_state(d), [first, second])
    assert back.inputs_folded == d.inputs_folded
    assert back.requests_answered == d.requests_answered
    assert outputs(back, [records[5]]) == [b""]  # a repeat of an early input: nothing


def test_a_snapshot_of_another_format_is_refused() -> None:
    d = Decider()
    outputs(d, inputs()[:12])
    state = encode_state(d)
    with pytest.raises(SnapshotError):
        restore(b"TDS\x63" + state[4:], [])
    with pytest.raises(SnapshotError):
        restore(state[:40], [])
    with pytest.raises(SnapshotError):
        restore(state, [b"junk"])


def test_a_hold_survives_a_snapshot_and_expires_the_same() -> None:
    records = inputs()
    d = Decider()
    outputs(d, records)
    assert set(d.holds) == {"w50"}  # w12 approved, w40 rejected, w50 still held
    back = restore(encode_state(d), [take_delta(d)])
    assert back.holds == d.holds
    later = NOW + 3600
    assert [t.SerializeToString() for t in back.ticks(NOW - 100, later)] == \
        [t.SerializeToString() for t in d.ticks(NOW - 100, later)]
    [tick] = d.ticks(NOW - 100, later)
    assert tick.tick.hold_expiry
    ours, theirs = back.fold(tick), d.fold(tick)
    assert ours.approvals and [m.SerializeToString() for m in [*ours.decisions, *ours.approvals]] \
        == [m.SerializeToString() for m in [*theirs.decisions, *theirs.approvals]]
    assert not back.holds and "w50" not in back.state.workloads  # type: ignore[union-attr]
