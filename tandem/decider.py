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
from tandem.engine.reoptimise import reoptimise
from tandem.engine.state import State
from tandem.engine.topology import Link, OperState, Topology
from tandem.events import derived_id, meta_time, new_meta
from tandem.pbconvert import decision_to_pb, link_from_pb, request_from_pb, site_from_pb
from google.protobuf.timestamp_pb2 import Timestamp

from tandem.v1 import alarms_pb2, decider_pb2, decision_pb2, inventory_pb2
from tandem.v1 import link_state_pb2, workload_pb2
from tandem.addressing import Blocks
from tandem.steps import plan as plan_steps
from tandem.inventory import check_inventory
from tandem.linkstate import check_link_state
from tandem.requests import check_request
from tandem.validation import (EVENT_ID_REUSED, INVALID, PROCESSING_ERROR, REQUEST_ID_REUSED,
                               InvalidEvent, check_meta, check_ranges, decode, require)

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


@dataclass
class _LinkOper:
    """A link's two independent conditions: operationally down (port status, NOC), and
    outside its SLA band (telemetry), with the usable fraction of capacity while it is."""

    down: bool = False
    sla_factor: float | None = None

    @property
    def state(self) -> OperState:
        if self.down:
            return OperState.DOWN
        return OperState.DEGRADED if self.sla_factor is not None else OperState.UP

    @property
    def factor(self) -> float:
        return 1.0 if self.down or self.sla_factor is None else self.sla_factor


class Decider:
    """The decider's whole state; `fold` is its only way to change."""

    def __init__(self) -> None:
        self.topology = Topology()
        self.state: State | None = None
        self.oper: dict[str, _LinkOper] = {}
        # input id -> digest of its content; request id -> (decision id, digest of the order)
        self.inputs_folded: dict[str, bytes] = {}
        self.requests_answered: dict[str, tuple[str, bytes]] = {}
        # Address blocks of the workloads' groups (what their reservations match on).
        self.blocks = Blocks()
        self.count = 0
        self._order = b""  # digest of the request being answered
        self._answered_now: list[str] = []  # request ids answered by the input being folded
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
        for at, reason in capacity_moments(self.topology, since, until):
            ts = Timestamp()
            ts.FromNanoseconds(int(at * 1e9))
            meta = new_meta("streams/clock", event_id=derived_id("tick", reason, repr(at)), at=at)
            out.append(decider_pb2.DeciderInput(meta=meta, tick=decider_pb2.ClockTick(
                at=ts, reason=reason)))
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
        check_meta(inp, now)
        check_ranges(inp)
        which = inp.WhichOneof("input")
        require(which is not None, INVALID, "input: none of request, inventory, link_state, "
                                            "reoptimise, tick, execution_failed is set")
        topo = self.topology
        if which == "request":
            check_request(inp.request, topo.sites, now)
        elif which == "inventory":
            check_inventory(inp.inventory, topo.sites, topo.links, now)
        elif which == "link_state":
            check_link_state(inp.link_state, topo.links, now)
        elif which == "tick":
            require(inp.tick.HasField("at"), INVALID, "tick.at: missing")
            require(bool(inp.tick.reason), INVALID, "tick.reason: empty")
        elif which == "execution_failed":
            require(bool(inp.execution_failed.workload_id), INVALID,
                    "execution_failed.workload_id: empty")

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
        saved = (self.topology, self.state, dict(self.oper), self.count,
                 Blocks(dict(self.blocks.owned), set(self.blocks.used)))
        self._answered_now = []
        try:
            out = self._fold(inp, which)
        except BaseException:
            (self.topology, self.state, self.oper, self.count, self.blocks) = saved
            for rid in self._answered_now:
                self.requests_answered.pop(rid, None)
            raise
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
            t = inp.tick.at.seconds + inp.tick.at.nanos / 1e9
            log.info("decider: clock tick at %.3f (%s)", t, inp.tick.reason)
            self._change_topology(inp, self.topology, t, out)
        elif which == "execution_failed":
            self._on_execution_failed(inp, out)
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
        old = self.oper.get(ev.link_id, _LinkOper())
        if ev.state == link_state_pb2.OPER_STATE_DEGRADED:
            oper = _LinkOper(old.down, _factor(link, ev.degradation))
        elif ev.sla:  # back inside the SLA band: says nothing about a DOWN port
            oper = _LinkOper(old.down, None)
        else:
            oper = _LinkOper(ev.state == link_state_pb2.OPER_STATE_DOWN, old.sla_factor)
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

    def _on_reoptimise(self, inp: decider_pb2.DeciderInput, out: Outputs) -> None:
        if self.state is None or not self.state.workloads:
            return
        before = self.state
        plan = reoptimise(before)
        log.info("decider: re-optimisation moves %d reservations in %d stages; max utilisation "
                 "%.3f -> %.3f", sum(len(s) for s in plan.stages), len(plan.stages),
                 plan.max_util_before, plan.max_util_after)
        self.state = plan.state
        for i, d in enumerate(plan.decisions):
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

    def _on_execution_failed(self, inp: decider_pb2.DeciderInput, out: Outputs) -> None:
        """Carrying out a decision failed (the executor has undone its steps): the workload's
        reservation is returned. A verdict about a decision that is no longer the workload's
        last one changes nothing (a later decision replaced it)."""
        ev = inp.execution_failed
        old = self.state.workloads.get(ev.workload_id) if self.state is not None else None
        if old is None or old.revision != ev.revision:
            log.info("decider: execution failure of %s revision %d is stale: ignored",
                     ev.workload_id, ev.revision)
            return
        assert self.state is not None
        d = Decision(Kind.ROLLED_BACK, old.workload_id, old.tenant, old.request_id,
                     revision=old.revision + 1,
                     explanation=Explanation(f"rolled back: carrying out revision {ev.revision} "
                                             f"failed: {ev.reason}"))
        self._emit(inp, 0, old, d, out)
        self.state = self.state.apply(d)

    # ------------------------------------------------------------------------ output
    def _emit(self, inp: decider_pb2.DeciderInput, index: int, old: Decision | None,
              new: Decision, out: Outputs) -> None:
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
        msg.steps.extend(plan_steps(old, new, self.blocks, corr, at, msg.meta.event_id))
        if new.kind in (Kind.RELEASED, Kind.PREEMPTED, Kind.ROLLED_BACK):
            self.blocks.release(new.workload_id)
        out.decisions.append(msg)
        if new.request_id and index == 0 and inp.WhichOneof("input") == "request":
            self.requests_answered[new.request_id] = (msg.meta.event_id, self._order)
            self._answered_now.append(new.request_id)
            phase = (decision_pb2.WORKLOAD_PHASE_REJECTED if new.kind is Kind.REJECTED
                     else decision_pb2.WORKLOAD_PHASE_DECIDED)
            reason = (f"{new.rejection.constraint}: {new.rejection.detail}"
                      if new.rejection is not None else new.explanation.summary)
            out.statuses.append(decision_pb2.WorkloadStatus(
                meta=new_meta(SOURCE, corr, derived_id("status", msg.meta.event_id, "decided"),
                              at),
                workload_id=new.workload_id, tenant=new.tenant, phase=phase,
                reason=reason, decision_id=msg.meta.event_id, revision=new.revision,
                steps=len(msg.steps)))
        if new.kind in (Kind.DEGRADED, Kind.PREEMPTED, Kind.ROLLED_BACK):
            out.alarms.append(alarms_pb2.Alarm(
                meta=new_meta(SOURCE, corr, derived_id("alarm", cause, str(index)), at),
                severity=alarms_pb2.SEVERITY_MAJOR, raised_by=SOURCE,
                workload_id=new.workload_id, text=new.explanation.summary))


def _factor(link: Link, deg: link_state_pb2.Degradation) -> float:
    """Usable fraction of capacity while degraded: from the effective capacity if given."""
    nominal = max(link.capacity_ab_mbps, link.capacity_ba_mbps)
    eff = max(deg.effective_capacity_ab_mbps, deg.effective_capacity_ba_mbps)
    if eff > 0 and nominal > 0:
        return min(1.0, eff / nominal)
    return 1.0


def capacity_moments(topology: Topology, since: float, until: float) -> list[tuple[float, str]]:
    """Moments in (since, until] at which an announced capacity window starts or ends."""
    out: list[tuple[float, str]] = []
    for lid, link in topology.links.items():
        for i, w in enumerate(link.capacity_schedule):
            for t, what in ((w.start, "starts"), (w.end, "ends")):
                if since < t <= until:
                    out.append((t, f"link {lid} capacity window {i} {what}"))
    return sorted(out)
