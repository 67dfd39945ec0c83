"""The decider's fold refuses bad input in one place and never half-applies (issue 9).

Every test folds records the way the worker does (`Decider.fold_record`, bytes and the
record's timestamp) and checks both what is refused and that later inputs are decided as if
the refused one never came.
"""

from __future__ import annotations

import math
import time

import pytest

from tandem.decider import Decider
from tandem.events import new_meta
from tandem.services.demo_data import demo_federation
from tandem.v1 import decider_pb2, decision_pb2 as D, inventory_pb2 as K, link_state_pb2 as L
from tandem.v1 import workload_pb2 as W
from tandem.validation import (EVENT_ID_REUSED, OUT_OF_RANGE, PROCESSING_ERROR,
                               REQUEST_ID_REUSED, TOO_LARGE, UNDECODABLE, UNKNOWN_REFERENCE)



def now() -> float:
    """The fold's "now", read when folding: a module-level constant taken at collection time
    turned every event made later into one "from the future" once the suite ran for 5 min."""
    return time.time()


def wrap(ev: object, event_id: str | None = None) -> bytes:
    which = {W.RequestEvent: "request", K.InventoryEvent: "inventory",
             L.LinkStateEvent: "link_state"}[type(ev)]
    return decider_pb2.DeciderInput(meta=new_meta("test", event_id=event_id),
                                    **{which: ev}).SerializeToString()


def place(rid: str, wid: str, bw: float = 10.0, max_latency: float = 30.0,
          event_id: str | None = None) -> W.RequestEvent:
    return W.RequestEvent(meta=new_meta("test", event_id=event_id), request_id=rid,
                          place=W.WorkloadRequest(
        tenant="t", workload_id=wid, priority=W.PRIORITY_CLASS_STANDARD,
        groups=[W.VmGroup(group_id="a", count=1, vcpus=1, memory_gib=1),
                W.VmGroup(group_id="b", count=1, vcpus=1, memory_gib=1)],
        demands=[W.TrafficDemand(demand_id="d", from_group="a", to_group="b",
                                 bandwidth_mbps=bw, max_latency_ms=max_latency)],
        rules=W.Rules(anti_affinity=[W.AntiAffinity(group_ids=["a", "b"])])))


def federation() -> Decider:
    d = Decider()
    for ev in demo_federation():
        out = d.fold_record(wrap(ev), now())
        assert out.invalid is None, out.invalid
    return d


def decision_of(d: Decider, payload: bytes) -> D.Decision:
    out = d.fold_record(payload, now())
    assert out.invalid is None, out.invalid
    [dec] = out.decisions
    return dec


def fingerprint(d: Decider) -> tuple[object, ...]:
    """Everything a later decision depends on."""
    return (d.topology, d.state, dict(d.oper), d.count, dict(d.requests_answered),
            dict(d.inputs_folded))


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0, 1e308])
def test_absurd_numbers_on_the_decider_log_are_refused(value: float) -> None:
    d = federation()
    before = fingerprint(d)
    out = d.fold_record(wrap(place("r1", "w1", bw=value)), now())
    assert out.invalid is not None and out.invalid.reason == OUT_OF_RANGE
    assert "bandwidth_mbps" in out.invalid.detail
    assert fingerprint(d) == before


def test_an_infinite_latency_bound_is_not_placed() -> None:
    d = federation()
    out = d.fold_record(wrap(place("r1", "w1", max_latency=math.inf)), now())
    assert out.invalid is not None and "max_latency_ms" in out.invalid.detail
    assert not out.decisions


def test_a_huge_capacity_cannot_poison_later_topology_changes() -> None:
    """1e308 used to pass, then every later topology change overflowed at the decider."""
    d = federation()
    decision_of(d, wrap(place("r1", "w1")))
    huge = K.InventoryEvent(meta=new_meta("test"), link=K.Link(
        link_id="ams-fra", site_a="ams", site_b="fra", capacity_ab_mbps=1e308,
        capacity_ba_mbps=1e308, latency_ms=6.1))
    assert d.fold_record(wrap(huge), now()).invalid.reason == OUT_OF_RANGE  # type: ignore[union-attr]
    down = L.LinkStateEvent(meta=new_meta("test"), link_id="ams-fra",
                            state=L.OPER_STATE_DOWN, cause="cut")
    out = d.fold_record(wrap(down), now())
    assert out.invalid is None and d.topology.links["ams-fra"].oper_state.name == "DOWN"


def test_references_are_checked_against_the_deciders_own_topology() -> None:
    d = federation()
    before = fingerprint(d)
    for ev in (
        K.InventoryEvent(meta=new_meta("t"), link=K.Link(link_id="x", site_a="ams", site_b="nowhere",
                                                         capacity_ab_mbps=1, capacity_ba_mbps=1)),
        L.LinkStateEvent(meta=new_meta("t"), link_id="no-link", state=L.OPER_STATE_DOWN),
        K.InventoryEvent(meta=new_meta("t"), removed=K.ElementRemoved(
            kind=K.ElementRemoved.KIND_SITE, id="nowhere")),
    ):
        out = d.fold_record(wrap(ev), now())
        assert out.invalid is not None and out.invalid.reason == UNKNOWN_REFERENCE, ev
    assert "x" not in d.topology.links  # a link naming an unknown site never enters
    assert fingerprint(d) == before


def test_a_reused_event_id_is_refused_and_a_true_repeat_ignored() -> None:
    d = federation()
    first = place("r1", "w1")
    decision_of(d, wrap(first, event_id="in-1"))
    repeat = d.fold_record(wrap(first, event_id="in-1"), now())
    assert repeat.duplicate and repeat.invalid is None and not repeat.decisions
    other = place("r2", "w2", event_id=first.meta.event_id)
    out = d.fold_record(wrap(other, event_id="in-1"), now())
    assert out.invalid is not None and out.invalid.reason == EVENT_ID_REUSED
    assert first.meta.event_id in out.invalid.detail
    # r2 with its own id is decided as if the refused record never came.
    assert decision_of(d, wrap(place("r2", "w2"))).kind == D.DECISION_KIND_PLACED


def test_a_request_id_reused_for_another_order_is_refused() -> None:
    d = federation()
    decision_of(d, wrap(place("r1", "w1")))
    same = d.fold_record(wrap(place("r1", "w1")), now())  # a client's resend: harmless
    assert same.invalid is None and not same.decisions
    out = d.fold_record(wrap(place("r1", "w9", bw=20)), now())
    assert out.invalid is not None and out.invalid.reason == REQUEST_ID_REUSED


def test_a_failing_fold_leaves_the_state_exactly_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    d = federation()
    decision_of(d, wrap(place("r1", "w1")))
    before = fingerprint(d)
    import tandem.decider as mod

    def boom(*a: object, **k: object) -> None:
        raise OverflowError("engine failure")

    monkeypatch.setattr(mod, "decide", boom)
    out = d.fold_record(wrap(place("r2", "w2")), now())
    assert out.invalid is not None and out.invalid.reason == PROCESSING_ERROR
    assert fingerprint(d) == before
    monkeypatch.undo()
    # The same request, resent with a new event id, is decided: nothing was half-applied.
    assert decision_of(d, wrap(place("r2", "w2"))).kind == D.DECISION_KIND_PLACED


def test_garbage_and_oversized_records_are_refused() -> None:
    d = federation()
    assert d.fold_record(b"", now()).invalid.reason == UNDECODABLE  # type: ignore[union-attr]
    assert d.fold_record(b"\xff" * 10, now()).invalid.reason == UNDECODABLE  # type: ignore[union-attr]
    assert d.fold_record(b"\x0a" * 300_000, now()).invalid.reason == TOO_LARGE  # type: ignore[union-attr]


def test_future_is_judged_by_the_record_time_so_replay_agrees() -> None:
    """A record from the future when it was written stays refused on a replay years later."""
    ev = place("r1", "w1")
    ev.meta.time.seconds = int(now()) + 3600
    payload = wrap(ev)
    assert federation().fold_record(payload, now()).invalid.reason == OUT_OF_RANGE  # type: ignore[union-attr]
    assert federation().fold_record(payload, now()).invalid.reason == OUT_OF_RANGE  # type: ignore[union-attr]
    later = federation().fold_record(payload, now() + 7200)  # the clock has caught up
    assert later.invalid is None
