"""Pure: the fold of `tandem.workload-status` the API keeps, the end of carrying a decision out
(what `PlaceAndConnect(wait_active)` waits for), and the TM Forum service order state.

Why a fold of its own: the decider log says what was decided, not how carrying it out went;
that comes from the executor's status events (PROVISIONING per step, ACTIVE, FAILED,
ROLLED_BACK, RELEASED) on another topic. Statuses of one workload share a partition (key:
workload id), so the order they are folded in is the order they were published in.

Why the order state is derived, not stored: it is a view for OSS systems (TMF641 states) of
the phase the events already say; deriving it keeps replay exact and one mapping in one place.
"""

from __future__ import annotations

from collections import deque

from tandem.v1 import api_pb2, decision_pb2

D = decision_pb2
HISTORY = 64  # statuses kept per workload (enough to find where a decision's run ended)

# Where carrying a decision out ends: active, or failed (the rollback follows), or a later
# decision that ended it (rolled back, released).
END_PHASES = frozenset({D.WORKLOAD_PHASE_ACTIVE, D.WORKLOAD_PHASE_FAILED,
                        D.WORKLOAD_PHASE_ROLLED_BACK, D.WORKLOAD_PHASE_RELEASED,
                        D.WORKLOAD_PHASE_REJECTED})

_STATE: dict[int, int] = {
    D.WORKLOAD_PHASE_ORDERED: api_pb2.SERVICE_ORDER_STATE_ACKNOWLEDGED,
    D.WORKLOAD_PHASE_DECIDED: api_pb2.SERVICE_ORDER_STATE_ACKNOWLEDGED,
    D.WORKLOAD_PHASE_PROVISIONING: api_pb2.SERVICE_ORDER_STATE_IN_PROGRESS,
    D.WORKLOAD_PHASE_ACTIVE: api_pb2.SERVICE_ORDER_STATE_COMPLETED,
    D.WORKLOAD_PHASE_FAILED: api_pb2.SERVICE_ORDER_STATE_FAILED,
    D.WORKLOAD_PHASE_ROLLED_BACK: api_pb2.SERVICE_ORDER_STATE_FAILED,
    D.WORKLOAD_PHASE_RELEASED: api_pb2.SERVICE_ORDER_STATE_CANCELLED,
    D.WORKLOAD_PHASE_HELD: api_pb2.SERVICE_ORDER_STATE_HELD,
    D.WORKLOAD_PHASE_REJECTED: api_pb2.SERVICE_ORDER_STATE_REJECTED,
}


def order_state(phase: int, kind: int = D.DECISION_KIND_PLACED) -> int:
    """The TMF641 service order state of a workload in `phase` whose last decision is of
    `kind`. A decision other than the first placement (a release being carried out, a reroute
    or migration after a link event) is work on an order already acknowledged: in progress."""
    if phase == D.WORKLOAD_PHASE_DECIDED and kind not in (D.DECISION_KIND_PLACED,
                                                          D.DECISION_KIND_UNSPECIFIED):
        return api_pb2.SERVICE_ORDER_STATE_IN_PROGRESS
    return _STATE.get(phase, api_pb2.SERVICE_ORDER_STATE_UNSPECIFIED)


class StatusFold:
    """Each workload's recent statuses, in the order published."""

    def __init__(self) -> None:
        self._history: dict[str, deque[decision_pb2.WorkloadStatus]] = {}
        self.folded = 0

    def fold(self, st: decision_pb2.WorkloadStatus) -> None:
        if not st.workload_id:
            return
        h = self._history.get(st.workload_id)
        if h is None:
            h = self._history[st.workload_id] = deque(maxlen=HISTORY)
        h.append(st)
        self.folded += 1

    def latest(self, workload_id: str) -> decision_pb2.WorkloadStatus | None:
        h = self._history.get(workload_id)
        return h[-1] if h else None

    def outcome(self, workload_id: str, decision_id: str) -> decision_pb2.WorkloadStatus | None:
        """The status that ended carrying out decision `decision_id`, once folded: the first
        status at or after the decision's own first one whose phase ends a run (ACTIVE,
        FAILED, ROLLED_BACK, RELEASED, REJECTED). None while it runs.
        If the decision's statuses fell out of the kept history, the workload moved on since:
        its latest status if that ends a run."""
        h = self._history.get(workload_id)
        if not h:
            return None
        items = list(h)
        start = next((i for i, s in enumerate(items) if s.decision_id == decision_id), None)
        if start is None:
            last = items[-1]
            return last if len(items) == HISTORY and last.phase in END_PHASES else None
        # The executor carries a workload's decisions out one after the other, so the first
        # end after the decision's first status is the end of its run (or of the run that
        # replaced it, when a later decision superseded it: the workload moved on).
        return next((s for s in items[start:] if s.phase in END_PHASES), None)


def phase_now(d: decision_pb2.Decision, st: decision_pb2.WorkloadStatus | None,
              decided_phase: int) -> int:
    """A workload's phase: its last status when that is about its last decision and comes from
    carrying it out (PROVISIONING, ACTIVE, FAILED, ...), else `decided_phase` (what the last
    decision alone says: the decider's own DECIDED status adds nothing to it, and says DECIDED
    for a release too)."""
    if st is not None and st.decision_id == d.meta.event_id \
            and st.phase not in (D.WORKLOAD_PHASE_DECIDED, D.WORKLOAD_PHASE_ORDERED):
        return st.phase
    return decided_phase
