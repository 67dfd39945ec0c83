"""The decider: a deterministic fold of the decider log into engine state and output events.

Pure (no I/O): the Faust agent, the recovery of a restarted worker and `tandem replay` all
call `Decider.fold` on the same inputs in the same order and so derive the same decisions,
with the same event ids (derived from the input's id), the same reservation ids and the same
commands. Time comes from the inputs (their event time), never from the clock.

Idempotency: an input id folded once is ignored when it comes again with the same content (a
forward repeated after a crash), and a request id answered once is not answered twice (a client
or agent resending it). The same id on *different* content is refused as reused: it cannot be
told from a repeat, so it would otherwise vanish without a word.

Validation in one place: `fold_record` decodes and checks every record of the log with the
checks the input agents apply (ranges, physical bounds, references against the decider's own
topology), because anything can be written to the log directly. A record that fails, or on
which the engine raises, changes nothing: `fold` restores the state it had before the input.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from tandem.engine.decide import decide
from tandem.engine.decision import Decision, Explanation, Kind, Rejection
from tandem.engine.react import react
from tandem.engine.state import State
from tandem.engine.topology import Link, Topology
from tandem.events import derived_id, meta_time, new_meta, seconds_of, stamp_at_or_after
from tandem.pbconvert import decision_to_pb, link_from_pb, request_from_pb, site_from_pb

from tandem.v1 import alarms_pb2, approval_pb2, decider_pb2, decision_pb2, inventory_pb2
from tandem.v1 import link_state_pb2, workload_pb2
from tandem.addressing import Blocks
from tandem.approvals import Approvals, Hold, hold_seconds
from tandem.steps import plan as plan_steps
from tandem.inputs import check_input
from tandem.inventory import check_inventory
from tandem.linkstate import LinkOper, capacity_moments, link_factor
from tandem.rollout import Feedback, Rollout
from tandem.validation import (EVENT_ID_REUSED, PROCESSING_ERROR, REQUEST_ID_REUSED, InvalidEvent,
                               decode)

log = logging.getLogger(__name__)
SOURCE = "streams/decider"


@dataclass
class Outputs:
    """What one input makes the decider say, in the order it must be published."""

    decisions: list[decision_pb2.Decision] = field(default_factory=list)
    # Where the workloads stand (decided, rejected), for OSS/BSS and the NOC; the executor
    # publishes the rest (provisioning, active, failed, rolled back, released).
    statuses: list[decision_pb2.WorkloadStatus] = field(default_factory=list)
    alarms: list[alarms_pb2.Alarm] = field(default_factory=list)
    # Orders held for an approval, and holds ended (tandem.approvals).
    approvals: list[approval_pb2.ApprovalEvent] = field(default_factory=list)
    # The input was refused (bad, or an id reused on different content): the state is as
    # before, and the record is to be dead-lettered with this reason.
    invalid: InvalidEvent | None = None
    # The input repeats one already folded (same id, same content): nothing to do.
    duplicate: bool = False


@dataclass
class Admitted:
    """An input record as `Decider.admit` took it."""

    record: decider_pb2.DeciderInput | None  # to append to the decider log (None: nothing to)
    outputs: Outputs
    event: Any = None  # the decoded event (None when it did not decode)


_SCHEMAS: dict[str, type[Any]] = {"request": workload_pb2.RequestEvent,
                                  "inventory": inventory_pb2.InventoryEvent,
                                  "link_state": link_state_pb2.LinkStateEvent}


class Decider(Feedback, Approvals):
    """The decider's whole state; `fold` is its only way to change."""

    def __init__(self) -> None:
        self.topology = Topology()
        self.state: State | None = None
        self.oper: dict[str, LinkOper] = {}
        # input id -> digest of its content; request id -> (decision id, digest of the order)
        self.inputs_folded: dict[str, bytes] = {}
        self.requests_answered: dict[str, tuple[str, bytes]] = {}
        # Address blocks of the workloads' groups (what their reservations match on).
        self.blocks = Blocks()
        # The decision each workload had before its last one (what a failed change is rolled
        # back to), and the staged re-optimisation being carried out, if any.
        self.prior: dict[str, Decision] = {}
        self.rollout: Rollout | None = None
        # Orders held for an approval, by workload id (tandem.approvals).
        self.holds: dict[str, Hold] = {}
        self._ordering: tuple[str, float | None] | None = None
        self.count = 0
        self._order = b""  # digest of the request being answered
        self._answered_now: list[str] = []  # request ids answered by the input being folded
        self._prior_undo: list[tuple[str, Decision | None]] = []  # to undo a failed fold
        # Input ids and request ids added since the last snapshot took them (`take_new_ids`):
        # the dedupe maps only grow, so a snapshot stores each entry once.
        self.new_inputs: list[str] = []
        self.new_requests: list[str] = []

    # ---------------------------------------------------------------------------- fold
    def admit(self, kind: str, payload: bytes | None, now: float) -> Admitted:
        """One record of an input topic, folded: `kind` names the topic ("request",
        "inventory", "link_state", or "control" for operator orders, which come already
        wrapped as a `DeciderInput`). The event is decoded as that topic's event, wrapped for
        the decider log with an id derived from its own, validated against the decider's state
        and folded. `Admitted.record` is what to append to the log: None when nothing is to be
        (refused, a repeat, an LLDP observation). `now` is the input record's timestamp."""
        event: Any = None
        try:
            if kind == "control":
                inp = decode(decider_pb2.DeciderInput, payload)
                event = inp
            else:
                event = decode(_SCHEMAS[kind], payload)
                if kind == "inventory" and event.WhichOneof("change") == "observed":
                    check_inventory(event, self.topology.sites, self.topology.links, now)
                    return Admitted(None, Outputs(), event)  # for the NOC, not for decisions
                inp = decider_pb2.DeciderInput(
                    meta=new_meta(SOURCE, correlation_id=event.meta.correlation_id
                                  or event.meta.event_id,
                                  event_id=derived_id("decider-input", event.meta.event_id),
                                  at=now),
                    **{kind: event})
            self.check(inp, now)
            out = self.fold(inp)
            return Admitted(None if out.duplicate else inp, out, event)
        except InvalidEvent as bad:
            return Admitted(None, Outputs(invalid=bad), event)
        except Exception as exc:  # the engine failed on a valid input: keep it, say why
            log.exception("decider: input failed; state left as before it")
            return Admitted(None, Outputs(invalid=InvalidEvent(PROCESSING_ERROR, repr(exc)[:500])),
                            event)

    def ticks(self, since: float, until: float) -> list[decider_pb2.DeciderInput]:
        """Clock ticks for the capacity windows of the decider's topology starting or ending in
        (since, until]: inputs like any other, appended to the log where they are folded, so a
        replay sees them at the same place. Their ids name the moment."""
        out = []
        moments = [(at, reason, False) for at, reason in capacity_moments(self.topology, since,
                                                                         until)]
        moments += [(at, reason, True) for at, reason in self.hold_ticks(since, until)]
        for at, reason, expiry in sorted(moments):
            meta = new_meta("streams/clock", event_id=derived_id("tick", reason, repr(at)), at=at)
            out.append(decider_pb2.DeciderInput(meta=meta, tick=decider_pb2.ClockTick(
                at=stamp_at_or_after(at), reason=reason, hold_expiry=expiry)))
        return out

    def fold_record(self, payload: bytes | None, now: float) -> Outputs:
        """Decode, validate and fold one record of the decider log.

        `now` is the record's own timestamp (not the clock), so that replaying the log judges
        "from the future" exactly as the worker did. Never raises for a bad record: the refusal
        is in `Outputs.invalid` and the state is untouched."""
        try:
            inp = decode(decider_pb2.DeciderInput, payload)
            self.check(inp, now)
            return self.fold(inp)
        except InvalidEvent as bad:
            return Outputs(invalid=bad)
        except Exception as exc:  # the engine failed on a valid input: keep it, say why
            log.exception("decider: input failed; state left as before it")
            return Outputs(invalid=InvalidEvent(PROCESSING_ERROR, repr(exc)[:500]))

    def check(self, inp: decider_pb2.DeciderInput, now: float) -> None:
        """The input agents' checks, against the decider's own topology (raises InvalidEvent)."""
        check_input(inp, self.topology, now)

    def fold(self, inp: decider_pb2.DeciderInput) -> Outputs:
        """Fold one (valid) input; all or nothing: if it raises, the state is as before."""
        iid = inp.meta.event_id
        which = inp.WhichOneof("input")
        inner = getattr(inp, which) if which else inp
        digest = hashlib.blake2b(inner.SerializeToString(deterministic=True),
                                 digest_size=16).digest()
        seen = self.inputs_folded.get(iid)
        if seen is not None:
            if seen == digest:
                log.info("decider: input %s already folded: ignored", iid)
                return Outputs(duplicate=True)
            original = inner.meta.event_id if hasattr(inner, "meta") else iid
            raise InvalidEvent(EVENT_ID_REUSED, f"meta.event_id = {original!r} was used before "
                                                "by a different event")
        # Everything `_fold` may change: immutable values are kept as they are, the small
        # per-element dicts copied; request ids answered are undone key by key (that dict
        # grows with every request, too large to copy per input).
        saved = (self.topology, self.state, dict(self.oper), self.count, self.rollout,
                 dict(self.holds))
        self._answered_now, self._prior_undo = [], []
        self.blocks.checkpoint()
        try:
            out = self._fold(inp, which)
        except BaseException:
            (self.topology, self.state, self.oper, self.count, self.rollout, self.holds) = saved
            self.blocks.rollback()
            for rid in self._answered_now:
                self.requests_answered.pop(rid, None)
            for wid, was in reversed(self._prior_undo):
                if was is None:
                    self.prior.pop(wid, None)
                else:
                    self.prior[wid] = was
            raise
        self.blocks.commit()
        self.inputs_folded[iid] = digest
        self.new_inputs.append(iid)
        self.new_requests.extend(self._answered_now)
        return out

    def _fold(self, inp: decider_pb2.DeciderInput, which: str | None) -> Outputs:
        out = Outputs()
        self.count += 1
        at = meta_time(inp.meta)
        if which == "inventory":
            self._on_inventory(inp, inp.inventory, at, out)
        elif which == "link_state":
            self._on_link_state(inp, inp.link_state, at, out)
        elif which == "request":
            self._on_request(inp, at, out)
        elif which == "reoptimise":
            self._on_reoptimise(inp, out)
        elif which == "tick":
            t = seconds_of(inp.tick.at)
            log.info("decider: clock tick at %.3f (%s)", t, inp.tick.reason)
            self._expire_holds(inp, t, out)
            if not inp.tick.hold_expiry:
                self._change_topology(inp, self.topology, t, out)
        elif which == "execution_failed":
            self._on_execution_failed(inp, out)
        elif which == "execution_done":
            self._stage_progress(inp, inp.execution_done.decision_id, out)
        return out

    def fold_all(self, inputs: Iterable[decider_pb2.DeciderInput]) -> list[Outputs]:
        return [self.fold(i) for i in inputs]

    # ---------------------------------------------------------------------- topology
    def _effective(self, link: Link) -> Link:
        o = self.oper.get(link.link_id)
        if o is None:
            return link
        return replace(link, oper_state=o.state, capacity_factor=o.factor)

    def _on_inventory(self, inp: decider_pb2.DeciderInput, ev: inventory_pb2.InventoryEvent,
                      at: float, out: Outputs) -> None:
        which = ev.WhichOneof("change")
        topo = self.topology
        if which == "observed" or which is None:
            return
        if which == "site":
            topo = topo.with_site(site_from_pb(ev.site))
        elif which == "link":
            topo = topo.with_link(self._effective(link_from_pb(ev.link)))
        elif ev.removed.kind == inventory_pb2.ElementRemoved.KIND_SITE:
            topo = topo.without_site(ev.removed.id)
        else:
            topo = topo.without_link(ev.removed.id)
            self.oper.pop(ev.removed.id, None)
        self._change_topology(inp, topo, at, out)

    def _on_link_state(self, inp: decider_pb2.DeciderInput, ev: link_state_pb2.LinkStateEvent,
                       at: float, out: Outputs) -> None:
        link = self.topology.links.get(ev.link_id)
        if link is None:  # validated upstream; the inventory may have removed it since
            return
        old = self.oper.get(ev.link_id, LinkOper())
        if ev.state == link_state_pb2.OPER_STATE_DEGRADED:
            oper = LinkOper(old.down, link_factor(link, ev.degradation))
        elif ev.sla:  # back inside the SLA band: says nothing about a DOWN port
            oper = LinkOper(old.down, None)
        else:
            oper = LinkOper(ev.state == link_state_pb2.OPER_STATE_DOWN, old.sla_factor)
        if oper == old and ev.link_id in self.oper:
            return  # both ends of a link report the same transition: nothing changes
        self.oper[ev.link_id] = oper
        topo = self.topology.with_link(replace(link, oper_state=oper.state, capacity_factor=oper.factor))
        self._change_topology(inp, topo, at, out)

    def _change_topology(self, inp: decider_pb2.DeciderInput, topo: Topology, at: float,
                         out: Outputs) -> None:
        self.topology = topo
        if self.state is None or not self.state.workloads:
            self.state = None  # compiled lazily, on the next request
            return
        before = self.state
        reaction = react(before, topo, at)
        self.state = reaction.state
        for i, d in enumerate(reaction.decisions):
            self._emit(inp, i, before.workloads.get(d.workload_id), d, out)

    # ---------------------------------------------------------------------- requests
    def _on_request(self, inp: decider_pb2.DeciderInput, at: float, out: Outputs) -> None:
        ev = inp.request
        op = ev.WhichOneof("op")
        order = hashlib.blake2b(getattr(ev, op).SerializeToString(deterministic=True) + op.encode(),
                                digest_size=16).digest()
        answered = self.requests_answered.get(ev.request_id)
        if answered is not None:
            if answered[1] != order:
                raise InvalidEvent(REQUEST_ID_REUSED, f"request_id = {ev.request_id!r} was "
                                                      f"answered before ({answered[0]}) for a "
                                                      "different order")
            log.info("decider: request %s already answered by %s: ignored", ev.request_id,
                     answered[0])
            return
        self._order = order
        if self.state is None:
            self.state = State.empty(self.topology, at)
        if op == "approval":
            self._on_verdict(inp, out)
            return
        wait = ev.place.approval if op == "place" else None
        until = at + hold_seconds(wait.hold_seconds) if wait is not None and wait.required \
            else None
        self._ordering = (ev.request_id, until)
        try:
            self._decide_order(inp, ev, at, out)
        finally:
            self._ordering = None

    def _decide_order(self, inp: decider_pb2.DeciderInput, ev: workload_pb2.RequestEvent,
                      at: float, out: Outputs) -> None:
        assert self.state is not None
        if ev.WhichOneof("op") == "release":
            wid = ev.release.workload_id
            old = self.state.workloads.get(wid)
            if old is None:
                d = Decision(Kind.REJECTED, wid, ev.release.tenant, ev.request_id,
                             rejection=Rejection("invalid_request", f"workload {wid!r} is not admitted"),
                             explanation=Explanation(f"release refused: {wid!r} is not admitted"))
            else:
                d = Decision(Kind.RELEASED, wid, old.tenant, ev.request_id,
                             explanation=Explanation(f"released on request {ev.request_id}"))
            self._emit(inp, 0, old, d, out)
            self.state = self.state.apply(d)
            return
        req = request_from_pb(ev.place, ev.request_id)
        old = self.state.workloads.get(req.workload_id)
        d = decide(self.state, req)
        self._emit(inp, 0, old, d, out)
        self.state = self.state.apply(d)

    def _alarm(self, inp: decider_pb2.DeciderInput, text: str, severity: int,
               out: Outputs, workload_id: str = "") -> None:
        # A workload's alarm is one of many a link failure may raise: its decision says it.
        log.log(logging.INFO if workload_id else logging.WARNING, "decider: %s", text)
        out.alarms.append(alarms_pb2.Alarm(
            meta=new_meta(SOURCE, inp.meta.correlation_id or inp.meta.event_id,
                          derived_id("alarm", inp.meta.event_id, str(len(out.alarms))),
                          meta_time(inp.meta)),
            severity=severity, raised_by=SOURCE, workload_id=workload_id,  # type: ignore[arg-type]
            text=text))

    # ------------------------------------------------------------------------ output
    def _emit(self, inp: decider_pb2.DeciderInput, index: int, old: Decision | None,
              new: Decision, out: Outputs) -> decision_pb2.Decision:
        cause = inp.meta.event_id
        corr = inp.meta.correlation_id or cause
        at = meta_time(inp.meta)
        msg = decision_to_pb(new)
        msg.meta.CopyFrom(new_meta(SOURCE, corr, derived_id("decision", cause, str(index)), at))
        if not msg.request_id:
            msg.request_id = cause
        msg.revision = new.revision
        if new.kind is not Kind.REJECTED and new.request is not None:
            for group, _site, count in new.placements:
                self.blocks.ensure(new.workload_id, group, count)
        held, base = self._gate(inp, index, old, new, msg, out)
        if not held:
            msg.steps.extend(plan_steps(base, new, self.blocks, corr, at, msg.meta.event_id))
        if not new.holds:
            self.blocks.release(new.workload_id)
        if new.kind is not Kind.REJECTED:  # what a failure of `new` is rolled back to
            wid = new.workload_id
            self._prior_undo.append((wid, self.prior.get(wid)))
            if old is not None and old.holds and new.holds and new.kind is not Kind.ROLLED_BACK:
                self.prior[wid] = old
            else:
                self.prior.pop(wid, None)
        out.decisions.append(msg)
        if new.request_id and index == 0 and inp.WhichOneof("input") == "request":
            self.requests_answered[new.request_id] = (msg.meta.event_id, self._order)
            self._answered_now.append(new.request_id)
            phase = (decision_pb2.WORKLOAD_PHASE_REJECTED if new.kind is Kind.REJECTED
                     else decision_pb2.WORKLOAD_PHASE_HELD if held
                     else decision_pb2.WORKLOAD_PHASE_DECIDED)
            reason = (f"{new.rejection.constraint}: {new.rejection.detail}"
                      if new.rejection is not None else new.explanation.summary)
            if held:
                reason = f"approval pending until {msg.hold.until.ToJsonString()}: {reason}"
            out.statuses.append(decision_pb2.WorkloadStatus(
                meta=new_meta(SOURCE, corr, derived_id("status", msg.meta.event_id, "decided"),
                              at),
                workload_id=new.workload_id, tenant=new.tenant, phase=phase,
                reason=reason, decision_id=msg.meta.event_id, revision=new.revision,
                steps=len(msg.steps)))
        if new.kind in (Kind.DEGRADED, Kind.PREEMPTED, Kind.ROLLED_BACK):
            self._alarm(inp, new.explanation.summary, alarms_pb2.SEVERITY_MAJOR, out,
                        new.workload_id)
        return msg
