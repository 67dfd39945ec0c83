"""The executor: carries each decision out step by step on acknowledgements, and undoes what it
did when a step is refused or times out (pure: a fold of decisions, acks and clock ticks).

A decision carries its ordered steps (`tandem.steps`). For each workload the executor sends the
commands of one step to their sites together and sends the next step only when every command
of this one is acknowledged OK (or NOOP: already in that state). A step whose commands are not
all acknowledged within `STEP_TIMEOUT_S` is sent again (the units treat a repeat as a no-op),
up to `MAX_ATTEMPTS` times. A refusal (FAILED) or the last timeout fails the decision: the
executor sends what undoes the steps already done (an installed path is removed, a created VM
deleted, a powered-on VM powered off; removals cannot be undone and are not), in reverse order
(an undo the unit refuses is named in the failure: what it left behind is said, not hidden), and then tells the decider
(`ExecutionFailed`), which returns the workload's reservation through its log
(`DECISION_KIND_ROLLED_BACK`, so replay stays exact); that decision is carried out like any.

Decisions of one workload run one after the other, in order (a later one was planned from the
earlier one's result). Workload status is published as it moves: PROVISIONING (step k of n),
ACTIVE, FAILED (with the reason), ROLLED_BACK, RELEASED. The executor's state per workload is a
protobuf message (`ExecutorState`): the stream processor persists it with the commands it
causes, in one transaction, so an executor killed between two steps resumes where it stood and
sends no step twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tandem.events import derived_id, new_meta
from tandem.steps import CLEANUP_STEPS
from tandem.v1 import commands_pb2, decider_pb2, decision_pb2

STEP_TIMEOUT_S = 30.0
MAX_ATTEMPTS = 3
SOURCE = "streams/executor"
D = decision_pb2
Command = commands_pb2.SdnCommand | commands_pb2.ComputeCommand

_DONE_PHASE = {D.DECISION_KIND_RELEASED: D.WORKLOAD_PHASE_RELEASED,
               D.DECISION_KIND_PREEMPTED: D.WORKLOAD_PHASE_RELEASED,
               D.DECISION_KIND_ROLLED_BACK: D.WORKLOAD_PHASE_ROLLED_BACK}


@dataclass
class Effects:
    """What folding one input makes the executor say."""

    commands: list[Command] = field(default_factory=list)
    statuses: list[D.WorkloadStatus] = field(default_factory=list)
    # Verdicts for the decider (on `tandem.control`): ExecutionFailed, and ExecutionDone for a
    # decision of a staged re-optimisation (the decider starts the next stage on them).
    to_decider: list[decider_pb2.DeciderInput] = field(default_factory=list)
    # Workloads whose state changed (to persist); a workload absent from `Executor.states`
    # afterwards has none left (a tombstone).
    changed: set[str] = field(default_factory=set)

    def extend(self, other: Effects) -> None:
        self.commands += other.commands
        self.statuses += other.statuses
        self.to_decider += other.to_decider
        self.changed |= other.changed


def _any(cmd: Command) -> D.AnyCommand:
    if isinstance(cmd, commands_pb2.SdnCommand):
        return D.AnyCommand(sdn=cmd)
    return D.AnyCommand(compute=cmd)


def _cmd(a: D.AnyCommand) -> Command:
    return a.sdn if a.WhichOneof("command") == "sdn" else a.compute


def inverse(cmd: Command, at: float) -> list[Command]:
    """What undoes a command that was carried out, in the order to send it (empty: nothing
    can, or nothing needs to). A VM received from another site is first received back there
    — a relocation inside one vCenter moves it back; between hypervisors the old copy is still
    there and that is a no-op — and only then deleted here (a no-op after a relocation back):
    undoing a migration never deletes the only copy."""
    undo_id = f"undo/{cmd.command_id}"
    meta = new_meta(SOURCE, cmd.meta.correlation_id, derived_id("undo", cmd.meta.event_id), at)
    if isinstance(cmd, commands_pb2.SdnCommand):
        if cmd.WhichOneof("op") != "install":
            return []
        return [commands_pb2.SdnCommand(
            meta=meta, command_id=undo_id, site_id=cmd.site_id,
            remove=commands_pb2.RemovePath(reservation_id=cmd.install.reservation_id,
                                           generation=cmd.install.generation,
                                           workload_id=cmd.install.workload_id))]
    C = commands_pb2.ComputeCommand
    undo = {C.ACTION_CREATE: C.ACTION_DELETE, C.ACTION_MIGRATE_IN: C.ACTION_DELETE,
            C.ACTION_POWER_ON: C.ACTION_POWER_OFF}.get(cmd.action)
    if undo is None:
        return []
    out: list[Command] = [C(meta=meta, command_id=undo_id, site_id=cmd.site_id, action=undo,
                            vm=cmd.vm, ipv4_address=cmd.ipv4_address)]
    if cmd.action == C.ACTION_MIGRATE_IN and cmd.peer_site_id:
        back = C(meta=new_meta(SOURCE, cmd.meta.correlation_id,
                               derived_id("undo-back", cmd.meta.event_id), at),
                 command_id=f"undo/back/{cmd.command_id}", site_id=cmd.peer_site_id,
                 action=C.ACTION_MIGRATE_IN, vm=cmd.vm, peer_site_id=cmd.site_id,
                 ipv4_address=cmd.ipv4_address)
        out.insert(0, back)
    return out


def _again(cmd: Command, attempt: int) -> Command:
    """The command sent once more: the same command id (a unit treats it as a repeat), a new
    event id derived from the first one and the attempt, so a resend is told apart from the
    same record published twice (which exactly-once forbids)."""
    again = type(cmd).FromString(cmd.SerializeToString())
    again.meta.event_id = derived_id("attempt", str(attempt), cmd.meta.event_id)
    return again


def _verdict(d: D.Decision, now: float, **verdict: decider_pb2.ExecutionFailed
             | decider_pb2.ExecutionDone) -> decider_pb2.DeciderInput:
    """The decider's input saying how carrying `d` out ended (`failed=` or `done=`), with an id
    derived from the decision's: a replayed verdict is recognised as a repeat."""
    [(what, msg)] = verdict.items()
    meta = new_meta(SOURCE, d.meta.correlation_id, derived_id(f"execution-{what}",
                                                              d.meta.event_id), now)
    return decider_pb2.DeciderInput(meta=meta, **{f"execution_{what}": msg})  # type: ignore[arg-type]


class Executor:
    """The executor's state: one `ExecutorState` per workload with work in progress."""

    def __init__(self) -> None:
        self.states: dict[str, D.ExecutorState] = {}

    # ---------------------------------------------------------------------------- inputs
    def decision(self, d: D.Decision, now: float) -> Effects:
        fx = Effects()
        if d.kind == D.DECISION_KIND_REJECTED:
            return fx  # a refused change leaves what runs as it was
        if d.HasField("hold"):
            return fx  # held for an approval: the decider sends it again once approved
        wid = d.workload_id
        st = self.states.get(wid)
        if st is not None and st.HasField("running"):
            if any(q.meta.event_id == d.meta.event_id for q in st.queued) or \
                    st.running.decision.meta.event_id == d.meta.event_id:
                return fx  # a repeat
            st.queued.append(d)
            fx.changed.add(wid)
            return fx
        self._start(wid, d, now, fx)
        return fx

    def ack(self, workload_id: str, command_id: str, ok: bool, error: str, now: float) -> Effects:
        fx = Effects()
        st = self.states.get(workload_id)
        if st is None or not st.HasField("running") or command_id not in st.running.waiting:
            return fx  # late, repeated, or about a job already ended: nothing to do
        job = st.running
        job.waiting.remove(command_id)
        fx.changed.add(workload_id)
        if not ok and not job.compensating and self._cleanup(job):
            job.failure += f"{'; ' if job.failure else ''}{command_id} refused: " \
                           f"{error or 'no reason given'}"
        elif not ok and not job.compensating:
            self._fail(workload_id, f"{command_id} refused: {error or 'no reason given'}", now, fx)
            return fx
        if not ok:  # an undo refused: the rollback goes on, and the failure says what is left
            job.failure += f"; undoing {command_id} refused: {error or 'no reason given'}"

        if ok and not job.compensating:
            done = next((_cmd(a) for a in job.current if _cmd(a).command_id == command_id), None)
            if done is not None:
                self._remember_undo(job, done, now)
        if not job.waiting:
            self._advance(workload_id, now, fx)
        return fx

    def tick(self, now: float, workloads: Iterable[str] | None = None) -> Effects:
        """Steps past their deadline: sent again, failed after `MAX_ATTEMPTS`, or — while
        compensating — given up (what did not answer is named in the failure)."""
        fx = Effects()
        for wid in sorted(self.states if workloads is None else workloads):
            st = self.states.get(wid)
            if st is None or not st.HasField("running") or st.running.deadline > now:
                continue
            job = st.running
            fx.changed.add(wid)
            late = ", ".join(sorted(job.waiting))
            if job.compensating:
                job.failure += f"; undoing timed out at {late}"
                job.waiting[:] = []
                self._advance(wid, now, fx)
            elif job.attempt >= MAX_ATTEMPTS and self._cleanup(job):
                job.failure += f"{'; ' if job.failure else ''}step {job.step + 1} " \
                               f"({self._what(job)}) timed out: no answer for {late}"
                job.waiting[:] = []
                self._advance(wid, now, fx)
            elif job.attempt < MAX_ATTEMPTS:
                job.attempt += 1
                job.deadline = now + STEP_TIMEOUT_S
                fx.commands += [_again(_cmd(a), job.attempt) for a in job.current
                                if _cmd(a).command_id in set(job.waiting)]
            else:
                self._fail(wid, f"step {job.step + 1} ({self._what(job)}) timed out after "
                                f"{MAX_ATTEMPTS} attempts: no answer for {late}", now, fx)
        return fx

    # --------------------------------------------------------------------------- internal
    def _start(self, wid: str, d: D.Decision, now: float, fx: Effects) -> None:
        fx.changed.add(wid)
        if not d.steps:
            self._finish(wid, d, now, fx)
            return
        st = self.states.setdefault(wid, D.ExecutorState(workload_id=wid))
        st.running.CopyFrom(D.ExecutorJob(decision=d))
        self._send_step(wid, 0, now, fx)

    def _send_step(self, wid: str, index: int, now: float, fx: Effects) -> None:
        job = self.states[wid].running
        step = job.decision.steps[index]
        cmds: list[Command] = [*step.sdn, *step.compute]
        job.step, job.attempt, job.deadline = index, 1, now + STEP_TIMEOUT_S
        del job.current[:]
        job.current.extend(_any(c) for c in cmds)
        job.waiting[:] = [c.command_id for c in cmds]
        fx.commands += cmds
        fx.statuses.append(self._status(job.decision, D.WORKLOAD_PHASE_PROVISIONING,
                                        f"step {index + 1} of {len(job.decision.steps)}: "
                                        f"{step.what}", index, now))

    def _advance(self, wid: str, now: float, fx: Effects) -> None:
        st = self.states[wid]
        job = st.running
        if job.compensating and self._send_undo(job, now, fx):
            return  # the next undo phase
        if job.compensating:  # undone: the decider returns the reservation
            d = job.decision
            fx.to_decider.append(_verdict(d, now, failed=decider_pb2.ExecutionFailed(
                workload_id=wid, decision_id=d.meta.event_id, revision=d.revision,
                reason=job.failure)))
            self._next(wid, now, fx)
        elif job.step + 1 < len(job.decision.steps):
            self._send_step(wid, job.step + 1, now, fx)
        else:
            self._finish(wid, job.decision, now, fx)
            self._next(wid, now, fx)

    def _fail(self, wid: str, reason: str, now: float, fx: Effects) -> None:
        job = self.states[wid].running
        job.compensating, job.failure = True, reason
        fx.statuses.append(self._status(job.decision, D.WORKLOAD_PHASE_FAILED, reason, job.step,
                                        now))
        # The failing step's commands not acknowledged OK (refused, or not answered yet) may
        # still have been carried out, in part or late: they are undone too. Undoing what was
        # not done is a no-op at the unit, and a unit applies its site's commands in order, so
        # an undo never overtakes what it undoes.
        done = {_cmd(a).command_id.removeprefix("undo/") for a in job.undo}
        for a in job.current:
            cmd = _cmd(a)
            if cmd.command_id not in done:
                self._remember_undo(job, cmd, now)
        if not self._send_undo(job, now, fx):
            self._advance(wid, now, fx)

    @staticmethod
    def _remember_undo(job: D.ExecutorJob, cmd: Command, now: float) -> None:
        """Record what undoes `cmd` (done in step `job.step`): phase 4·step + 3, 2, ... so
        that a later step is undone first and, within one, the parts in their order."""
        parts = inverse(cmd, now)
        for i, part in enumerate(parts):
            job.undo.append(_any(part))
            job.undo_phase.append(4 * job.step + 3 - i)

    @staticmethod
    def _send_undo(job: D.ExecutorJob, now: float, fx: Effects) -> bool:
        """Send the highest undo phase left (latest done first within it); False: none left."""
        if not job.undo:
            return False
        if len(job.undo_phase) < len(job.undo):  # state saved before phases existed: one phase
            job.undo_phase.extend([0] * (len(job.undo) - len(job.undo_phase)))
        top = max(job.undo_phase)
        pairs = list(zip(job.undo, job.undo_phase))
        group = [_cmd(a) for a, p in reversed(pairs) if p == top]
        del job.undo[:], job.undo_phase[:]
        for a, p in pairs:
            if p != top:
                job.undo.append(a)
                job.undo_phase.append(p)
        job.attempt, job.deadline = 1, now + STEP_TIMEOUT_S
        del job.current[:]
        job.current.extend(_any(c) for c in group)
        job.waiting[:] = [c.command_id for c in group]
        fx.commands += group
        return True

    @staticmethod
    def _cleanup(job: D.ExecutorJob) -> bool:
        """A step after the new state is live (VMs migrated out, old paths removed, VMs
        deleted): its failure is reported, never undone — rolling back a working change
        because an old entry or VM could not be removed would trade a leftover for an outage."""
        return bool(job.decision.steps) and job.decision.steps[job.step].what in CLEANUP_STEPS

    def _finish(self, wid: str, d: D.Decision, now: float, fx: Effects) -> None:
        phase = _DONE_PHASE.get(d.kind, D.WORKLOAD_PHASE_ACTIVE)
        job = self.states[wid].running if wid in self.states else None
        left = job.failure if job is not None and job.HasField("decision") else ""
        reason = ("all steps acknowledged" if d.steps else "nothing to do") if not left else \
            f"in place, but clean-up failed (left behind, for the operator): {left}"
        fx.statuses.append(self._status(d, phase, reason, len(d.steps), now))
        if d.plan_id:
            fx.to_decider.append(_verdict(d, now, done=decider_pb2.ExecutionDone(
                workload_id=wid, decision_id=d.meta.event_id, revision=d.revision,
                plan_id=d.plan_id)))

    def _next(self, wid: str, now: float, fx: Effects) -> None:
        st = self.states[wid]
        st.ClearField("running")
        if st.queued:
            nxt = st.queued.pop(0)
            self._start(wid, nxt, now, fx)
        if not st.HasField("running") and not st.queued:
            del self.states[wid]
        fx.changed.add(wid)

    @staticmethod
    def _what(job: D.ExecutorJob) -> str:
        return job.decision.steps[job.step].what if job.decision.steps else ""

    @staticmethod
    def _status(d: D.Decision, phase: int, reason: str, done: int,
                now: float) -> D.WorkloadStatus:
        name = D.WorkloadPhase.Name(phase)
        return D.WorkloadStatus(
            meta=new_meta(SOURCE, d.meta.correlation_id,
                          derived_id("status", d.meta.event_id, name, str(done)), now),
            workload_id=d.workload_id, tenant=d.tenant, phase=phase,  # type: ignore[arg-type]
            reason=reason, decision_id=d.meta.event_id, revision=d.revision,
            steps_done=done, steps=len(d.steps))
