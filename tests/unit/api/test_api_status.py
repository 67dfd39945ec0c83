"""Pure: the status fold (where carrying a decision out ended) and the TM Forum order states."""

from __future__ import annotations

from tandem.services.api import convert
from tandem.services.api.status import HISTORY, StatusFold, order_state, phase_now
from tandem.v1 import api_pb2, decision_pb2

D = decision_pb2
S = api_pb2


def st(phase: int, decision: str, wid: str = "w1", done: int = 0) -> D.WorkloadStatus:
    return D.WorkloadStatus(workload_id=wid, phase=phase, decision_id=decision,  # type: ignore[arg-type]
                            steps_done=done, steps=2)


def test_outcome_is_the_first_end_after_the_decisions_own_status() -> None:
    f = StatusFold()
    # An earlier life of the workload ended ACTIVE under d0: not d1's outcome.
    for s in (st(D.WORKLOAD_PHASE_DECIDED, "d0"), st(D.WORKLOAD_PHASE_ACTIVE, "d0", done=2),
              st(D.WORKLOAD_PHASE_RELEASED, "r0")):
        f.fold(s)
    assert f.outcome("w1", "d1") is None
    f.fold(st(D.WORKLOAD_PHASE_DECIDED, "d1"))
    f.fold(st(D.WORKLOAD_PHASE_PROVISIONING, "d1"))
    assert f.outcome("w1", "d1") is None
    f.fold(st(D.WORKLOAD_PHASE_ACTIVE, "d1", done=2))
    end = f.outcome("w1", "d1")
    assert end is not None and end.phase == D.WORKLOAD_PHASE_ACTIVE and end.decision_id == "d1"
    assert f.outcome("w2", "d1") is None


def test_a_refused_step_ends_the_run_failed_then_a_later_decision_rolls_back() -> None:
    f = StatusFold()
    f.fold(st(D.WORKLOAD_PHASE_DECIDED, "d1"))
    f.fold(st(D.WORKLOAD_PHASE_FAILED, "d1"))
    f.fold(st(D.WORKLOAD_PHASE_ROLLED_BACK, "d2"))
    end = f.outcome("w1", "d1")
    assert end is not None and end.phase == D.WORKLOAD_PHASE_FAILED
    latest = f.latest("w1")
    assert latest is not None and latest.phase == D.WORKLOAD_PHASE_ROLLED_BACK


def test_a_decision_fallen_out_of_the_history_answers_with_the_latest_end() -> None:
    f = StatusFold()
    f.fold(st(D.WORKLOAD_PHASE_DECIDED, "d1"))
    for i in range(HISTORY):
        f.fold(st(D.WORKLOAD_PHASE_PROVISIONING, f"r{i}"))
    assert f.outcome("w1", "d1") is None  # moved on, but not to an end
    f.fold(st(D.WORKLOAD_PHASE_ACTIVE, "r-last"))
    end = f.outcome("w1", "d1")
    assert end is not None and end.decision_id == "r-last"


def test_order_states_follow_the_phase_and_the_decision_kind() -> None:
    assert order_state(D.WORKLOAD_PHASE_DECIDED) == S.SERVICE_ORDER_STATE_ACKNOWLEDGED
    assert order_state(D.WORKLOAD_PHASE_DECIDED, D.DECISION_KIND_RELEASED) == \
        S.SERVICE_ORDER_STATE_IN_PROGRESS
    assert order_state(D.WORKLOAD_PHASE_DECIDED, D.DECISION_KIND_REROUTED) == \
        S.SERVICE_ORDER_STATE_IN_PROGRESS
    assert order_state(D.WORKLOAD_PHASE_PROVISIONING) == S.SERVICE_ORDER_STATE_IN_PROGRESS
    assert order_state(D.WORKLOAD_PHASE_ACTIVE) == S.SERVICE_ORDER_STATE_COMPLETED
    assert order_state(D.WORKLOAD_PHASE_FAILED) == S.SERVICE_ORDER_STATE_FAILED
    assert order_state(D.WORKLOAD_PHASE_ROLLED_BACK) == S.SERVICE_ORDER_STATE_FAILED
    assert order_state(D.WORKLOAD_PHASE_RELEASED) == S.SERVICE_ORDER_STATE_CANCELLED
    assert order_state(D.WORKLOAD_PHASE_HELD) == S.SERVICE_ORDER_STATE_HELD
    assert order_state(D.WORKLOAD_PHASE_REJECTED) == S.SERVICE_ORDER_STATE_REJECTED
    assert order_state(D.WORKLOAD_PHASE_UNSPECIFIED) == S.SERVICE_ORDER_STATE_UNSPECIFIED


def test_the_phase_follows_a_status_only_about_the_last_decision() -> None:
    d = D.Decision(workload_id="w1", tenant="acme", kind=D.DECISION_KIND_REROUTED)
    d.meta.event_id = "d2"
    old = st(D.WORKLOAD_PHASE_ACTIVE, "d1")
    assert phase_now(d, old, D.WORKLOAD_PHASE_DECIDED) == D.WORKLOAD_PHASE_DECIDED
    w = convert.workload_of(d, True, old)
    assert w.phase == D.WORKLOAD_PHASE_DECIDED
    assert w.order_state == S.SERVICE_ORDER_STATE_IN_PROGRESS and w.status.decision_id == "d1"
    cur = st(D.WORKLOAD_PHASE_ACTIVE, "d2")
    w = convert.workload_of(d, True, cur)
    assert w.phase == D.WORKLOAD_PHASE_ACTIVE and w.order_state == S.SERVICE_ORDER_STATE_COMPLETED


def test_the_deciders_own_decided_status_leaves_the_decisions_phase() -> None:
    d = D.Decision(workload_id="w1", tenant="acme", kind=D.DECISION_KIND_RELEASED)
    d.meta.event_id = "r1"
    w = convert.workload_of(d, False, st(D.WORKLOAD_PHASE_DECIDED, "r1"))
    assert w.phase == D.WORKLOAD_PHASE_RELEASED
    assert w.order_state == S.SERVICE_ORDER_STATE_CANCELLED
    w = convert.workload_of(d, False, st(D.WORKLOAD_PHASE_PROVISIONING, "r1"))
    assert w.phase == D.WORKLOAD_PHASE_PROVISIONING  # VMs being deleted
    assert w.order_state == S.SERVICE_ORDER_STATE_IN_PROGRESS
