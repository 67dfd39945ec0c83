"""Orders held for an approval by a workflow system, then carried out or released (pure).

Why in the decider: a held decision reserves capacity (no other order may take it while a
human or a workflow decides), so the hold is part of the engine state; and the hold, the
verdict and the expiry must replay exactly, so each is an input of the decider log — the
order (with `approval.required`), the verdict (`RequestEvent.approval`, sent by the API's
Approve/Reject) and the time limit (a clock tick with `hold_expiry`, appended to the log by
the decider service like the capacity windows' ticks).

The mechanism is a gate in front of step planning (`_gate`, called by `Decider._emit`):

- an order that requires approval and is admitted is emitted **held**: its decision carries
  `ApprovalHold` and no steps (the executor leaves it alone), the state reserves what it holds,
  a PENDING approval event is published, and the workload's status is HELD;
- any later decision about a held workload that still holds something (a reroute after a link
  failure, a re-optimisation stage) stays held under the same hold; one that holds nothing (a
  release, a preemption) or a new order that needs no approval ends the hold (WITHDRAWN), and
  its steps are planned from what ran before the hold (`Hold.base`), not from the held decision
  that was never carried out;
- approval: the held decision is emitted again under a new revision with the steps from `base`
  to it, and the executor carries it out; rejection or expiry: a first placement is released
  (nothing was carried out, so no steps), a change of a running workload goes back to `base`
  (its placements and paths, under a new revision: nothing to do at the sites).

`Approvals` is the decider's part that does this (a mixin of `tandem.decider.Decider`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from google.protobuf.timestamp_pb2 import Timestamp

from tandem.engine.decision import Decision, Explanation, Kind, Rejection
from tandem.engine.state import State
from tandem.events import derived_id, meta_time, new_meta
from tandem.v1 import approval_pb2, decider_pb2, decision_pb2

if TYPE_CHECKING:
    from tandem.decider import Outputs

log = logging.getLogger("tandem.decider")
DEFAULT_HOLD_S = 900  # an order held without a time limit of its own (at most MAX_HOLD_S)
A = approval_pb2
NOT_HELD = "not_held"  # the rejection constraint of a verdict about no (or another) hold


@dataclass(frozen=True, slots=True)
class Hold:
    hold_id: str  # the id of the decision that put the order on hold
    request_id: str  # the order held
    until: float  # seconds since the epoch (event time)
    base: Decision | None  # what ran before the hold (None: a first placement)

    def pb(self) -> decision_pb2.ApprovalHold:
        ts = Timestamp()
        ts.FromNanoseconds(round(self.until * 1e6) * 1000)
        return decision_pb2.ApprovalHold(hold_id=self.hold_id, until=ts,
                                         request_id=self.request_id)


def hold_seconds(requested: int) -> int:
    return requested or DEFAULT_HOLD_S


class Approvals:
    """Holds, verdicts and expiries (see the module docstring); the decider calls these."""

    state: State | None
    holds: dict[str, Hold]
    # Set by the decider while it emits an order's decision: (request id, hold until or None
    # when the order needs no approval).
    _ordering: tuple[str, float | None] | None

    def _emit(self, inp: decider_pb2.DeciderInput, index: int, old: Decision | None,
              new: Decision, out: Outputs) -> decision_pb2.Decision:
        raise NotImplementedError

    # ------------------------------------------------------------------------ the gate
    def _gate(self, inp: decider_pb2.DeciderInput, index: int, old: Decision | None,
              new: Decision, msg: decision_pb2.Decision,
              out: Outputs) -> tuple[bool, Decision | None]:
        """Whether `msg` (about to be emitted for `new`) is held, and what its steps are
        planned from when it is not (what runs: `old`, or the base of an ended hold)."""
        wid = new.workload_id
        hold = self.holds.get(wid)
        if new.kind is Kind.REJECTED:
            return False, old  # changes nothing (no steps either)
        order = self._ordering if index == 0 else None
        if order is not None and order[1] is not None and new.holds:
            base = hold.base if hold is not None else old
            if hold is not None:
                self._publish(inp, hold, wid, new.tenant, A.APPROVAL_STATE_WITHDRAWN, msg, "",
                              f"replaced by order {order[0]}", out)
            hold = Hold(msg.meta.event_id, order[0], order[1], base)
            self.holds[wid] = hold
            msg.hold.CopyFrom(hold.pb())
            self._publish(inp, hold, wid, new.tenant, A.APPROVAL_STATE_PENDING, msg, "", "", out)
            log.info("decider: %s held for approval until %.3f (hold %s)", wid, hold.until,
                     hold.hold_id)
            return True, None
        if hold is None:
            return False, old
        if new.holds and order is None:
            msg.hold.CopyFrom(hold.pb())  # the engine's own change of a held workload
            return True, None
        del self.holds[wid]
        why = f"replaced by order {order[0]}" if order is not None else \
            f"{decision_pb2.DecisionKind.Name(msg.kind)} while held"
        self._publish(inp, hold, wid, new.tenant, A.APPROVAL_STATE_WITHDRAWN, msg, "", why, out)
        return False, hold.base

    # ------------------------------------------------------------------------ verdicts
    def _on_verdict(self, inp: decider_pb2.DeciderInput, out: Outputs) -> None:
        ev = inp.request
        v = ev.approval
        wid = v.workload_id
        hold = self.holds.get(wid)
        cur = self.state.workloads.get(wid) if self.state is not None else None
        why = ""
        if hold is None or cur is None:
            why = f"workload {wid!r} has no order held for approval"
        elif v.hold_id and v.hold_id != hold.hold_id:
            why = (f"hold {v.hold_id!r} is not {wid!r}'s current hold ({hold.hold_id}): the "
                   "order it judged was replaced")
        if why:
            d = Decision(Kind.REJECTED, wid, cur.tenant if cur else "", ev.request_id,
                         rejection=Rejection(NOT_HELD, why),
                         explanation=Explanation(f"verdict refused: {why}"))
            self._emit(inp, 0, cur, d, out)
            return
        assert hold is not None and cur is not None
        verdict = "approved" if v.approve else "rejected"
        by = f" by {v.by}" if v.by else ""
        note = f" ({v.comment})" if v.comment else ""
        self._settle(inp, hold, cur, v.approve, f"{verdict}{by}{note}", ev.request_id,
                     A.APPROVAL_STATE_APPROVED if v.approve else A.APPROVAL_STATE_REJECTED,
                     v.by, v.comment, out)

    def _expire_holds(self, inp: decider_pb2.DeciderInput, at: float, out: Outputs) -> None:
        """Every hold whose time limit is at or before `at` expires (oldest first); the tick
        made for a limit is never stamped before it (`tandem.events.stamp_at_or_after`)."""
        due = sorted((h.until, wid) for wid, h in self.holds.items() if h.until <= at)
        for _until, wid in due:
            hold = self.holds[wid]
            cur = self.state.workloads.get(wid) if self.state is not None else None
            if cur is None:  # cannot happen (a hold ends with its workload); keep it clean
                del self.holds[wid]
                continue
            self._settle(inp, hold, cur, False, "the approval's time limit passed", "",
                         A.APPROVAL_STATE_EXPIRED, "", "", out)

    def _settle(self, inp: decider_pb2.DeciderInput, hold: Hold, cur: Decision, approve: bool,
                what: str, request_id: str, state: int, by: str, comment: str,
                out: Outputs) -> None:
        """End `hold`: carry the held decision out (approve) or release it / restore the
        decision that ran before it."""
        assert self.state is not None
        wid = cur.workload_id
        del self.holds[wid]
        rid = request_id or cur.request_id
        if approve:
            d = replace(cur, revision=cur.revision + 1, request_id=rid,
                        explanation=replace(cur.explanation,
                                            summary=f"{what}: {cur.explanation.summary}"))
        elif hold.base is None:
            d = Decision(Kind.RELEASED, wid, cur.tenant, rid, revision=cur.revision + 1,
                         request=cur.request,
                         explanation=Explanation(f"not carried out, {what}: released"))
        else:
            b = hold.base
            d = replace(b, revision=cur.revision + 1, request_id=rid, preempted=(),
                        change_set=(), explanation=Explanation(
                            f"change not carried out, {what}: back to revision {b.revision}"))
        log.info("decider: hold %s of %s %s", hold.hold_id, wid, what)
        msg = self._emit(inp, len(out.decisions), hold.base, d, out)
        self.state = self.state.apply(d)
        self._publish(inp, hold, wid, cur.tenant, state, msg, by, comment or what, out)

    # ------------------------------------------------------------------------- events
    @staticmethod
    def _publish(inp: decider_pb2.DeciderInput, hold: Hold, wid: str, tenant: str, state: int,
                 msg: decision_pb2.Decision, by: str, comment: str, out: Outputs) -> None:
        """An approval event about `hold` (its state now, with `msg`) among the outputs."""
        name = A.ApprovalState.Name(state)
        meta = new_meta("streams/decider", inp.meta.correlation_id or inp.meta.event_id,
                        derived_id("approval", hold.hold_id, name, inp.meta.event_id,
                                   str(len(out.approvals))), meta_time(inp.meta))
        ev = A.ApprovalEvent(meta=meta, hold_id=hold.hold_id, workload_id=wid, tenant=tenant,
                             state=state, until=hold.pb().until,  # type: ignore[arg-type]
                             request_id=hold.request_id, by=by, comment=comment)
        ev.decision.CopyFrom(msg)
        out.approvals.append(ev)

    def hold_ticks(self, since: float, until: float) -> list[tuple[float, str]]:
        """The holds' time limits in (since, until], as clock-tick moments."""
        return sorted((h.until, f"approval hold {h.hold_id} of {wid} expires")
                      for wid, h in self.holds.items() if since < h.until <= until)
