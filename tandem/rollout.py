"""Re-optimisation carried out one stage after the other, and failures rolled back (pure).

`tandem.engine.reoptimise` plans moves in SWAN stages: within a stage every new path fits on
top of the current load with the old paths still in place, so no link is over capacity
whatever order the sites apply the stage in — *provided* the previous stage is finished (its
old paths removed) before the next one starts. The decider therefore emits one stage at a time:
a `Rollout` remembers the plan and the decisions of the current stage still being carried out;
the executor reports each one (`ExecutionDone`, or `ExecutionFailed` after undoing it) through
the decider log, and when none is left the next stage is built on the state as it is then
(`next_stage`): moves that no longer apply are dropped with their reason. A rollout is part of
the decider's state, so a takeover or a replay continues it exactly.

`Feedback` is the part of the decider that handles the executor's verdicts and re-optimisation
orders (a mixin of `tandem.decider.Decider`, kept here so that each module stays readable).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from dataclasses import dataclass, replace

from tandem.engine.decision import Decision, Explanation, Kind
from tandem.engine.reoptimise import Move, fresh, reoptimise, stage_decisions
from tandem.engine.state import State
from tandem.v1 import alarms_pb2, decider_pb2, decision_pb2

if TYPE_CHECKING:
    from tandem.decider import Outputs

log = logging.getLogger("tandem.decider")


@dataclass(frozen=True, slots=True)
class Rollout:
    plan_id: str  # the re-optimisation order's event id
    stages: tuple[tuple[Move, ...], ...]
    target: float = 0.0
    stage: int = -1  # the stage being carried out (0-based); -1 before the first
    waiting: frozenset[str] = frozenset()  # its decisions not yet carried out (event ids)

    def where(self) -> str:
        return f"re-optimisation {self.plan_id} (stage {self.stage + 1} of {len(self.stages)})"

    def reported(self, decision_id: str) -> Rollout | None:
        """This rollout once `decision_id` is reported carried out or failed (None: not one of
        the decisions it waits for)."""
        if decision_id not in self.waiting:
            return None
        return replace(self, waiting=self.waiting - {decision_id})


@dataclass(frozen=True, slots=True)
class Stage:
    index: int  # 0-based; == len(stages) when the rollout is over
    decisions: tuple[Decision, ...]
    dropped: tuple[tuple[Move, str], ...]


def next_stage(state: State, r: Rollout) -> Stage:
    """The next stage with anything left to do, planned on `state`: its decisions (one per
    workload) and the moves dropped on the way. Stages emptied by dropped moves are skipped."""
    dropped: list[tuple[Move, str]] = []
    k = r.stage + 1
    while k < len(r.stages):
        keep, gone = fresh(state, r.stages[k])
        dropped += gone
        if keep:
            decisions, _ = stage_decisions(
                state, keep, f"re-optimisation stage {k + 1} of {len(r.stages)}: moved {{n}} "
                             "path(s) off the most loaded links")
            return Stage(k, tuple(decisions), tuple(dropped))
        k += 1
    return Stage(k, (), tuple(dropped))


class Feedback:
    """Re-optimisation orders, stage by stage, and the executor's verdicts (see the module
    docstring); the decider's fold calls these."""

    state: State | None
    prior: dict[str, Decision]
    rollout: Rollout | None

    def _emit(self, inp: decider_pb2.DeciderInput, index: int, old: Decision | None,
              new: Decision, out: Outputs) -> decision_pb2.Decision:
        raise NotImplementedError

    def _alarm(self, inp: decider_pb2.DeciderInput, text: str, severity: int,
               out: Outputs, workload_id: str = "") -> None:
        raise NotImplementedError

    def _on_reoptimise(self, inp: decider_pb2.DeciderInput, out: Outputs) -> None:
        if self.rollout is not None:
            self._alarm(inp, f"{self.rollout.where()} is under way: re-optimisation order "
                             f"{inp.meta.event_id} ignored", alarms_pb2.SEVERITY_WARNING, out)
            return
        if self.state is None or not self.state.workloads:
            log.info("decider: re-optimisation: no workload to move")
            return
        target = inp.reoptimise.target_utilisation
        plan = reoptimise(self.state, target=target)
        log.info("decider: re-optimisation %s moves %d reservations in %d stages; max "
                 "utilisation %.3f -> %.3f%s", inp.meta.event_id,
                 sum(len(s) for s in plan.stages), len(plan.stages), plan.max_util_before,
                 plan.max_util_after, "" if target <= 0 else
                 f" (target {target:.3f} {'met' if plan.target_met else 'NOT met'})")
        if plan.stages:
            self.rollout = Rollout(inp.meta.event_id, plan.stages, target)
            self._next_stage(inp, out)

    def _next_stage(self, inp: decider_pb2.DeciderInput, out: Outputs) -> None:
        """Emit the next stage with anything to carry out. A workload held for an approval
        (`tandem.approvals`) has its moves decided but held, not carried out: the stage does
        not wait for them."""
        while True:
            r = self.rollout
            assert r is not None and self.state is not None
            stage = next_stage(self.state, r)
            for m, why in stage.dropped:
                log.info("decider: %s: move of %s dropped: %s", r.where(), m.old.reservation_id,
                         why)
            if not stage.decisions:
                log.info("decider: re-optimisation %s done (%d stages)", r.plan_id,
                         len(r.stages))
                self.rollout = None
                return
            ids = []
            for d in stage.decisions:
                msg = self._emit(inp, len(out.decisions),
                                 self.state.workloads.get(d.workload_id), d, out)
                msg.plan_id, msg.stage, msg.stages = r.plan_id, stage.index + 1, len(r.stages)
                if not msg.HasField("hold"):
                    ids.append(msg.meta.event_id)
                self.state = self.state.apply(d)
            self.rollout = replace(r, stage=stage.index, waiting=frozenset(ids))
            log.info("decider: %s: %d decision(s) sent", self.rollout.where(), len(ids))
            if ids:
                return

    def _stage_progress(self, inp: decider_pb2.DeciderInput, decision_id: str,
                        out: Outputs) -> None:
        """A decision of the current stage was carried out or undone: the next stage starts
        when none is left."""
        r = self.rollout.reported(decision_id) if self.rollout is not None else None
        if r is None:
            return
        self.rollout = r
        if not r.waiting:
            self._next_stage(inp, out)

    def _on_execution_failed(self, inp: decider_pb2.DeciderInput, out: Outputs) -> None:
        """Carrying out a decision failed and the executor undid its steps: the workload goes
        back to the decision it had before (its placements and paths, under a new revision), or
        holds nothing if it had none. A verdict about a decision that is no longer the
        workload's last one changes nothing (a later decision replaced it); a rollback that
        fails is not rolled back again: what runs is then unknown, and a critical alarm says
        so."""
        ev = inp.execution_failed
        old = self.state.workloads.get(ev.workload_id) if self.state is not None else None
        if old is None or old.revision != ev.revision:
            log.info("decider: execution failure of %s revision %d is stale: ignored",
                     ev.workload_id, ev.revision)
        elif old.kind is Kind.ROLLED_BACK:
            self._alarm(inp, f"rolling {ev.workload_id} back failed ({ev.reason}): what runs "
                             "is unknown; check the sites", alarms_pb2.SEVERITY_CRITICAL, out)
        else:
            assert self.state is not None
            prior = self.prior.get(ev.workload_id)
            why = f"carrying out revision {ev.revision} failed: {ev.reason}"
            if prior is not None:
                d = replace(prior, kind=Kind.ROLLED_BACK, revision=old.revision + 1,
                            preempted=(), change_set=(), explanation=Explanation(
                                f"rolled back to revision {prior.revision}: {why}"))
            else:
                d = Decision(Kind.ROLLED_BACK, old.workload_id, old.tenant, old.request_id,
                             revision=old.revision + 1, request=old.request,
                             explanation=Explanation(f"rolled back: {why}"))
            self._emit(inp, 0, old, d, out)
            self.state = self.state.apply(d)
        self._stage_progress(inp, ev.decision_id, out)
