"""Orders held for an approval (issue 13): the hold reserves capacity and carries nothing out;
an approval carries the held decision out, a rejection or the time limit releases it (or, for
a change of a running workload, restores what ran); the engine's own changes of a held
workload stay held; everything is an input of the decider log, so a replay gives the same."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tandem.approvals import DEFAULT_HOLD_S, NOT_HELD
from tandem.decider import Decider, Outputs
from tandem.events import new_meta
from tandem.executor import Executor
from tandem.v1 import approval_pb2 as A, decider_pb2, decision_pb2 as D, link_state_pb2 as L
from tandem.v1 import workload_pb2 as W

sys.path.insert(0, str(Path(__file__).parent))
from test_decider_robustness import federation, place, wrap  # noqa: E402


def held_order(rid: str, wid: str, bw: float = 10.0, hold: int = 0) -> W.RequestEvent:
    ev = place(rid, wid, bw)
    ev.place.approval.required = True
    ev.place.approval.hold_seconds = hold
    return ev


def at(ev: W.RequestEvent, t: float) -> decider_pb2.DeciderInput:
    """`ev` as the decider log holds it, folded at time `t` (the hold's clock)."""
    return decider_pb2.DeciderInput(meta=new_meta("test", at=t), request=ev)


def verdict(rid: str, wid: str, approve: bool, hold_id: str = "",
            by: str = "change-board") -> W.RequestEvent:
    return W.RequestEvent(meta=new_meta("test"), request_id=rid, approval=W.ApprovalVerdict(
        workload_id=wid, approve=approve, hold_id=hold_id, by=by, comment="CAB-42"))


def fold(d: Decider, ev: object) -> Outputs:
    out = d.fold_record(wrap(ev), time.time())
    assert out.invalid is None, out.invalid
    return out


def used(d: Decider) -> float:
    return sum(d.state.used) if d.state is not None else 0.0


def test_a_held_order_reserves_its_capacity_and_carries_nothing_out() -> None:
    d = federation()
    out = fold(d, held_order("r1", "w1", bw=40))
    [msg] = out.decisions
    assert msg.kind == D.DECISION_KIND_PLACED and msg.HasField("hold") and not msg.steps
    assert msg.hold.hold_id == msg.meta.event_id and msg.hold.request_id == "r1"
    assert msg.hold.until.seconds - msg.meta.time.seconds in (DEFAULT_HOLD_S - 1, DEFAULT_HOLD_S)
    [st] = out.statuses
    assert st.phase == D.WORKLOAD_PHASE_HELD and "approval pending until" in st.reason
    [ev] = out.approvals
    assert ev.state == A.APPROVAL_STATE_PENDING and ev.hold_id == msg.hold.hold_id
    assert ev.decision.placements == msg.placements and ev.tenant == "t"
    assert "w1" in d.state.workloads and used(d) > 0  # type: ignore[union-attr]
    fx = Executor().decision(msg, 0.0)
    assert not fx.commands and not fx.statuses  # the executor leaves it alone


def test_an_approval_carries_the_held_decision_out() -> None:
    d = federation()
    [held] = fold(d, held_order("r1", "w1")).decisions
    out = fold(d, verdict("v1", "w1", True, held.hold.hold_id))
    [msg] = out.decisions
    assert not msg.HasField("hold") and msg.request_id == "v1"
    assert msg.revision == held.revision + 1
    assert list(msg.placements) == list(held.placements) and list(msg.paths) == list(held.paths)
    assert "approved by change-board (CAB-42)" in msg.explanation.summary
    what = [s.what for s in msg.steps]
    assert what and what[0] == "create VMs" and "power VMs on" in what
    [st] = out.statuses
    assert st.phase == D.WORKLOAD_PHASE_DECIDED
    [ev] = out.approvals
    assert (ev.state, ev.by, ev.comment) == (A.APPROVAL_STATE_APPROVED, "change-board", "CAB-42")
    assert "w1" not in d.holds
    fx = Executor().decision(msg, 0.0)
    assert fx.commands and fx.statuses[0].phase == D.WORKLOAD_PHASE_PROVISIONING
    # the same verdict again is answered once; another verdict now finds nothing held
    assert fold(d, verdict("v1", "w1", True, held.hold.hold_id)).decisions == []
    [late] = fold(d, verdict("v2", "w1", False)).decisions
    assert late.kind == D.DECISION_KIND_REJECTED and late.rejection.constraint == NOT_HELD


def test_a_rejection_releases_what_the_hold_reserved() -> None:
    d = federation()
    fold(d, held_order("r1", "w1", bw=40))
    out = fold(d, verdict("v1", "w1", False))
    [msg] = out.decisions
    assert msg.kind == D.DECISION_KIND_RELEASED and not msg.steps  # nothing ran
    assert "rejected by change-board" in msg.explanation.summary
    assert out.approvals[0].state == A.APPROVAL_STATE_REJECTED
    assert "w1" not in d.state.workloads and used(d) == 0  # type: ignore[union-attr]
    fx = Executor().decision(msg, 0.0)
    assert not fx.commands and fx.statuses[-1].phase == D.WORKLOAD_PHASE_RELEASED


def test_the_time_limit_expires_the_hold_through_a_clock_tick() -> None:
    d = federation()
    t0 = time.time() - 100
    [held] = d.fold(at(held_order("r1", "w1", hold=30), t0)).decisions
    until = held.hold.until.seconds + held.hold.until.nanos / 1e9
    assert abs(until - (t0 + 30)) < 1e-3
    assert d.ticks(t0, until - 0.001) == []
    [tick] = d.ticks(t0, until + 5)
    assert tick.tick.hold_expiry and abs(tick.tick.at.ToNanoseconds() / 1e9 - until) < 1e-6
    out = d.fold(tick)
    [msg] = out.decisions
    assert msg.kind == D.DECISION_KIND_RELEASED and "time limit passed" in msg.explanation.summary
    assert out.approvals[0].state == A.APPROVAL_STATE_EXPIRED and "w1" not in d.holds
    assert "w1" not in d.state.workloads  # type: ignore[union-attr]
    assert d.ticks(t0, until + 5) == []  # nothing held any more


def test_a_verdict_naming_another_hold_is_refused_and_changes_nothing() -> None:
    d = federation()
    fold(d, held_order("r1", "w1"))
    [msg] = fold(d, verdict("v1", "w1", True, hold_id="not-this-one")).decisions
    assert msg.kind == D.DECISION_KIND_REJECTED and msg.rejection.constraint == NOT_HELD
    assert "w1" in d.holds
    [msg] = fold(d, verdict("v2", "nobody", True)).decisions
    assert msg.kind == D.DECISION_KIND_REJECTED and "no order held" in msg.rejection.detail


def test_a_held_change_of_a_running_workload_is_planned_from_what_runs() -> None:
    d = federation()
    [first] = fold(d, place("r1", "w1", bw=10)).decisions
    [held] = fold(d, held_order("r2", "w1", bw=60)).decisions
    assert held.HasField("hold") and not held.steps
    # rejected: back to what ran (the same sites and paths, nothing to do at the sites)
    d2 = federation()
    for ev in (place("r1", "w1", bw=10), held_order("r2", "w1", bw=60)):
        fold(d2, ev)
    [back] = fold(d2, verdict("v1", "w1", False)).decisions
    assert back.kind == first.kind and list(back.placements) == list(first.placements)
    assert [p.bandwidth_mbps for p in back.paths] == [10] and not back.steps
    # approved: the steps go from what ran to the change (not from the held decision)
    [go] = fold(d, verdict("v1", "w1", True)).decisions
    assert [p.bandwidth_mbps for p in go.paths] == [60] and go.steps


def test_the_engines_own_change_of_a_held_workload_stays_held() -> None:
    d = federation()
    [held] = fold(d, held_order("r1", "w1")).decisions
    link = d.state.workloads["w1"].paths[0].links[0]  # type: ignore[union-attr]
    out = fold(d, L.LinkStateEvent(meta=new_meta("test"), link_id=link,
                                   state=L.OPER_STATE_DOWN))
    [moved] = [m for m in out.decisions if m.workload_id == "w1"]
    assert moved.kind != D.DECISION_KIND_PLACED and not moved.steps
    assert moved.hold.hold_id == held.hold.hold_id and not out.approvals
    # approved afterwards: the rerouted decision is what is carried out
    [go] = fold(d, verdict("v1", "w1", True)).decisions
    assert all(link not in p.link_ids for p in go.paths) and go.steps


def test_a_release_or_a_plain_order_ends_the_hold() -> None:
    d = federation()
    fold(d, held_order("r1", "w1"))
    out = fold(d, W.RequestEvent(meta=new_meta("test"), request_id="rel",
                                 release=W.ReleaseRequest(workload_id="w1")))
    [msg] = out.decisions
    assert msg.kind == D.DECISION_KIND_RELEASED and not msg.steps
    assert out.approvals[0].state == A.APPROVAL_STATE_WITHDRAWN and "w1" not in d.holds
    fold(d, held_order("r2", "w2"))
    out = fold(d, place("r3", "w2"))  # the same workload ordered again, no approval needed
    [msg] = out.decisions
    assert not msg.HasField("hold") and msg.steps and msg.steps[0].what == "create VMs"
    assert out.approvals[0].state == A.APPROVAL_STATE_WITHDRAWN


def test_a_replay_of_the_log_gives_the_same_holds_verdicts_and_expiries() -> None:
    t0 = time.time() - 200
    d = federation()
    log: list[decider_pb2.DeciderInput] = []

    def run(dd: Decider, inp: decider_pb2.DeciderInput) -> bytes:
        o = dd.fold(inp)
        return b"|".join(m.SerializeToString(deterministic=True)
                         for m in [*o.decisions, *o.statuses, *o.alarms, *o.approvals])

    inputs = [held_order("r1", "w1", hold=20), held_order("r2", "w2", hold=60),
              held_order("r3", "w3"), verdict("v1", "w3", True)]
    got = []
    for ev in inputs:
        inp = at(ev, t0)
        log.append(inp)
        got.append(run(d, inp))
    for tick in d.ticks(t0, t0 + 100):
        log.append(tick)
        got.append(run(d, tick))
    assert len(log) == len(inputs) + 2 and set(d.holds) == set()
    again = federation()
    assert [run(again, inp) for inp in log] == got


def test_an_order_changing_a_running_workload_is_carried_out_make_before_break() -> None:
    """Found while building approvals: an order for an admitted workload got its reservations'
    old ids, so a new bandwidth (or path) under the same id was neither installed nor removed.
    A change is now the old decision's successor (`tandem.engine.decision.succeed`)."""
    d = federation()
    [first] = fold(d, place("r1", "w1", bw=10)).decisions
    [change] = fold(d, place("r2", "w1", bw=60)).decisions
    assert change.revision == first.revision + 1
    assert [p.reservation_id for p in change.paths] != [p.reservation_id for p in first.paths]
    what = [s.what for s in change.steps]
    assert what[-1] == "remove old paths" and any(s.startswith("install") for s in what)
    rates = {c.install.rate_kbps for s in change.steps for c in s.sdn
             if c.WhichOneof("op") == "install"}
    assert rates == {60_000}
    [same] = fold(d, place("r3", "w1", bw=60)).decisions  # nothing changed: nothing to do
    assert [p.reservation_id for p in same.paths] == [p.reservation_id for p in change.paths]
    assert not same.steps


def test_the_tick_made_for_a_hold_always_expires_it() -> None:
    """A tick's time travels in whole nanoseconds: whatever the fraction of the order's time,
    the tick made for its hold's time limit must not land just before it."""
    import random

    rng = random.Random(7)
    d = federation()
    base = time.time() - 3600
    for i in range(60):
        t = base + i * 7 + rng.random()
        d.fold(at(held_order(f"r{i}", f"w{i}", bw=1, hold=1 + rng.randrange(5)), t))
        ticks = d.ticks(t, t + 10)
        assert ticks, f"no tick for the hold of w{i}"
        for tick in ticks:
            d.fold(tick)
        assert f"w{i}" not in d.holds, f"the tick did not expire w{i} (t = {t!r})"


def test_a_tick_is_never_stamped_before_its_moment() -> None:
    """The same holds for capacity windows' ticks (`start <= t` must hold at the tick)."""
    import random

    from tandem.events import seconds_of, stamp_at_or_after

    rng = random.Random(3)
    for _ in range(10_000):
        moment = 1.7e9 + rng.random() * 1e8
        t = seconds_of(stamp_at_or_after(moment))
        assert moment <= t < moment + 2e-6
