"""The executor: one step at a time on acknowledgements; retries; undo and hand back on failure;
one decision after the other per workload; its state survives being serialised."""

from __future__ import annotations

from tandem.addressing import Blocks
from tandem.engine.decision import Decision, Kind, Reservation
from tandem.engine.workload import Demand, VmGroup, WorkloadRequest
from tandem.events import derived_id, new_meta
from tandem.executor import MAX_ATTEMPTS, STEP_TIMEOUT_S, Effects, Executor
from tandem.pbconvert import decision_to_pb
from tandem.steps import plan
from tandem.v1 import decision_pb2 as D
from tandem.v1.commands_pb2 import ComputeCommand as C

P = D  # phases live in decision_pb2


def decision(wid: str = "w", kind: Kind = Kind.PLACED, old: Decision | None = None,
             rev: int = 0, sites: tuple[str, ...] = ("ams", "fra", "par"),
             links: tuple[str, ...] = ("ams-fra", "fra-par")) -> tuple[D.Decision, Decision]:
    req = WorkloadRequest(wid, (VmGroup("a", 1, 1, 1), VmGroup("b", 1, 1, 1)),
                          (Demand("d", "a", 10.0, to_group="b"),))
    paths = () if kind is Kind.RELEASED else (
        Reservation(f"{wid}/d/0.r{rev}", wid, "d", sites, links, (), 10.0, 1.0),)
    places = () if kind is Kind.RELEASED else (("a", sites[0], 1), ("b", sites[-1], 1))
    eng = Decision(kind, wid, "t", f"req-{rev}", places, paths, revision=rev, request=req)
    blocks = Blocks()
    for g, _, n in places or (old.placements if old else ()):
        blocks.ensure(wid, g, n)
    msg = decision_to_pb(eng)
    msg.meta.CopyFrom(new_meta("test", event_id=f"dec-{wid}-{rev}-{kind.value}"))
    msg.revision = rev
    msg.steps.extend(plan(old, eng, blocks, "c", 0.0, msg.meta.event_id))
    return msg, eng


def ack_all(ex: Executor, cmds: list, wid: str = "w", now: float = 1.0) -> list:
    statuses = []
    for c in cmds:
        fx = ex.ack(wid, c.command_id, True, "", now)
        statuses += fx.statuses
        cmds_next = fx.commands
    return statuses


def ack_phase(ex: Executor, cmds: list, now: float, wid: str = "w") -> Effects:
    """Acknowledge every command of a step (or undo phase) OK; the effects of the last."""
    assert cmds
    fx = Effects()
    for c in cmds:
        fx = ex.ack(wid, c.command_id, True, "", now)
    return fx


def test_steps_go_one_after_the_other_then_active() -> None:
    ex = Executor()
    msg, _ = decision()
    fx = ex.decision(msg, 0.0)
    assert [c.command_id for c in fx.commands] == [c.command_id for c in
                                                  [*msg.steps[0].sdn, *msg.steps[0].compute]]
    assert fx.statuses[-1].phase == P.WORKLOAD_PHASE_PROVISIONING
    for i in range(len(msg.steps)):
        step = [*msg.steps[i].sdn, *msg.steps[i].compute]
        for c in step[:-1]:
            assert ex.ack("w", c.command_id, True, "", 1.0).commands == []  # not before all
        fx = ex.ack("w", step[-1].command_id, True, "", 1.0)
        if i + 1 < len(msg.steps):
            assert {c.command_id for c in fx.commands} == {
                c.command_id for c in [*msg.steps[i + 1].sdn, *msg.steps[i + 1].compute]}
    assert fx.statuses[-1].phase == P.WORKLOAD_PHASE_ACTIVE
    assert "w" not in ex.states  # nothing left to persist: a tombstone
    assert ex.ack("w", step[-1].command_id, True, "", 2.0).commands == []  # late repeat


def test_a_refusal_undoes_what_was_done_in_reverse_and_hands_back() -> None:
    ex = Executor()
    msg, _ = decision()
    ex.decision(msg, 0.0)
    first = [*msg.steps[0].sdn, *msg.steps[0].compute]  # create VMs
    for c in first:
        ex.ack("w", c.command_id, True, "", 1.0)
    second = [*msg.steps[1].sdn, *msg.steps[1].compute]  # transit and egress installs
    ex.ack("w", second[0].command_id, True, "", 1.0)
    fx = ex.ack("w", second[1].command_id, False, "OFPET_FLOW_MOD_FAILED", 1.0)
    assert fx.statuses[-1].phase == P.WORKLOAD_PHASE_FAILED
    assert "OFPET_FLOW_MOD_FAILED" in fx.statuses[-1].reason
    undo = fx.commands
    # both installs of the failing step are removed first (the refused one may have left a
    # meter or part of its entries); the VMs are deleted only once that is acknowledged
    assert [(c.WhichOneof("op"), c.site_id) for c in undo] == [
        ("remove", second[1].site_id), ("remove", second[0].site_id)]
    deletes = ack_phase(ex, undo, 2.0).commands
    assert {c.action for c in deletes} == {C.ACTION_DELETE} and len(deletes) == 2
    fx2 = ack_phase(ex, deletes, 2.0)
    assert len(fx2.to_decider) == 1
    failed = fx2.to_decider[0].execution_failed
    assert failed.workload_id == "w" and failed.revision == 0 and "refused" in failed.reason
    assert "w" not in ex.states


def test_a_refused_power_on_undoes_every_step_in_reverse_and_names_a_refused_undo() -> None:
    """The last step fails: the other VM is powered off, both paths' entries removed (ingress
    first: traffic stops entering before the transit goes), both VMs deleted — and an undo the
    unit refuses is named in what the decider is told, not swallowed."""
    ex = Executor()
    msg, _ = decision()
    assert [s.what for s in msg.steps][-1] == "power VMs on"
    ex.decision(msg, 0.0)
    for step in msg.steps[:-1]:
        for c in [*step.sdn, *step.compute]:
            ex.ack("w", c.command_id, True, "", 1.0)
    on_a, on_b = msg.steps[-1].compute
    ex.ack("w", on_a.command_id, True, "", 1.0)
    fx = ex.ack("w", on_b.command_id, False, "host in maintenance", 1.0)
    assert fx.statuses[-1].phase == P.WORKLOAD_PHASE_FAILED

    def kinds(cmds: list) -> list:
        return [(c.action if hasattr(c, "action") else c.WhichOneof("op"), c.site_id)
                for c in cmds]

    ingress = msg.steps[2].sdn[0].site_id
    transit = sorted(c.site_id for c in msg.steps[1].sdn)
    # one phase per step, latest first; the refused power-on too (it may have been done in part)
    assert kinds(fx.commands) == [(C.ACTION_POWER_OFF, on_b.site_id),
                                  (C.ACTION_POWER_OFF, on_a.site_id)]
    fx = ack_phase(ex, fx.commands, 2.0)
    assert kinds(fx.commands) == [("remove", ingress)]
    fx = ack_phase(ex, fx.commands, 2.0)
    assert sorted(site for _, site in kinds(fx.commands)) == transit
    assert {op for op, _ in kinds(fx.commands)} == {"remove"}
    fx = ack_phase(ex, fx.commands, 2.0)
    assert sorted(kinds(fx.commands)) == sorted((C.ACTION_DELETE, c.site_id)
                                                for c in msg.steps[0].compute)
    *rest, last = fx.commands
    for c in rest:
        ex.ack("w", c.command_id, True, "", 2.0)
    done = ex.ack("w", last.command_id, False, "vCenter unreachable", 2.0)
    [verdict] = done.to_decider
    reason = verdict.execution_failed.reason
    assert "host in maintenance" in reason and f"undoing {last.command_id} refused" in reason
    assert "vCenter unreachable" in reason and "w" not in ex.states


def test_timeouts_resend_then_fail() -> None:
    ex = Executor()
    msg, _ = decision()
    first = ex.decision(msg, 0.0).commands
    t = STEP_TIMEOUT_S + 1
    for attempt in range(2, MAX_ATTEMPTS + 1):
        fx = ex.tick(t)
        assert [c.command_id for c in fx.commands] == [c.command_id for c in first]
        # a resend is a new event (exactly-once counts events), derived: a replay agrees
        assert not {c.meta.event_id for c in fx.commands} & {c.meta.event_id for c in first}
        assert [c.meta.event_id for c in fx.commands] == [
            derived_id("attempt", str(attempt), c.meta.event_id) for c in first]
        assert ex.states["w"].running.attempt == attempt
        t += STEP_TIMEOUT_S + 1
    fx = ex.tick(t)
    assert fx.statuses[-1].phase == P.WORKLOAD_PHASE_FAILED and "timed out" in fx.statuses[-1].reason
    # what never answered may still be carried out late: it is undone (a no-op if it was not)
    assert {(c.action, c.vm.vm_name) for c in fx.commands} == {
        (C.ACTION_DELETE, c.vm.vm_name) for c in first}
    assert not fx.to_decider
    for c in fx.commands:
        fx = ex.ack("w", c.command_id, True, "", t)
    assert fx.to_decider and "timed out" in fx.to_decider[0].execution_failed.reason


def test_decisions_of_one_workload_run_in_order_and_state_round_trips() -> None:
    ex = Executor()
    first, eng = decision()
    second, _ = decision(kind=Kind.REROUTED, old=eng, rev=1, sites=("ams", "lon", "par"),
                         links=("ams-lon", "lon-par"))
    ex.decision(first, 0.0)
    assert ex.decision(second, 0.0).commands == []  # waits for the first
    assert ex.decision(second, 0.0).changed == set()  # a repeat
    saved = {w: D.ExecutorState.FromString(s.SerializeToString()) for w, s in ex.states.items()}
    back = Executor()
    back.states = saved  # what a worker taking over resumes from
    sent = None
    for i in range(len(first.steps)):
        for c in [*first.steps[i].sdn, *first.steps[i].compute]:
            fx = back.ack("w", c.command_id, True, "", 1.0)
            sent = fx.commands or sent
    assert sent is not None and {c.command_id for c in sent} == {
        c.command_id for c in [*second.steps[0].sdn, *second.steps[0].compute]}


def test_a_release_without_steps_is_released_at_once() -> None:
    ex = Executor()
    msg, _ = decision(kind=Kind.RELEASED)
    fx = ex.decision(msg, 0.0)
    assert [s.phase for s in fx.statuses] == [P.WORKLOAD_PHASE_RELEASED]


def _active(ex: Executor, msg: D.Decision) -> None:
    ex.decision(msg, 0.0)
    for step in msg.steps:
        ack_phase(ex, [*step.sdn, *step.compute], 1.0)
    assert "w" not in ex.states


def test_a_failed_migration_receives_the_vm_back_before_deleting_the_new_copy() -> None:
    """Undoing a migration never deletes the only copy: the old site receives the VM back
    (a relocation inside one vCenter moves it; between hypervisors it is still there, a
    no-op), and only once that is acknowledged is the new site's copy deleted."""
    ex = Executor()
    first, eng = decision()
    _active(ex, first)
    moved, _ = decision(kind=Kind.MIGRATED, old=eng, rev=1, sites=("fra", "par"),
                        links=("fra-par",))
    fx = ex.decision(moved, 2.0)
    [mig] = [c for c in fx.commands if c.action == C.ACTION_MIGRATE_IN]
    assert (mig.site_id, mig.peer_site_id) == ("fra", "ams")
    ack_phase(ex, fx.commands, 2.0)
    install = [*moved.steps[1].sdn][0]
    fx = ex.ack("w", install.command_id, False, "OFPET_FLOW_MOD_FAILED", 3.0)
    assert all(c.WhichOneof("op") == "remove" for c in fx.commands)
    fx = ack_phase(ex, fx.commands, 3.0)
    [back] = fx.commands
    assert (back.action, back.site_id, back.peer_site_id) == (C.ACTION_MIGRATE_IN, "ams", "fra")
    fx = ack_phase(ex, fx.commands, 3.0)
    [gone] = fx.commands
    assert (gone.action, gone.site_id, gone.vm.vm_name) == (C.ACTION_DELETE, "fra",
                                                             mig.vm.vm_name)
    assert ack_phase(ex, fx.commands, 3.0).to_decider  # then the decider rolls back


def test_a_failed_clean_up_is_reported_not_undone() -> None:
    """Removing a reroute's old path fails at one site: the new path is live, so nothing is
    undone and the decider is not asked to roll back; the workload is ACTIVE and the status
    says what was left behind, for the operator."""
    ex = Executor()
    first, eng = decision()
    _active(ex, first)
    second, _ = decision(kind=Kind.REROUTED, old=eng, rev=1, sites=("ams", "lon", "par"),
                         links=("ams-lon", "lon-par"))
    ex.decision(second, 2.0)
    for step in second.steps[:-1]:
        ack_phase(ex, [*step.sdn, *step.compute], 2.0)
    assert second.steps[-1].what == "remove old paths"
    bad, *good = second.steps[-1].sdn
    fx = ex.ack("w", bad.command_id, False, "switch unreachable", 3.0)
    assert not fx.commands and not fx.to_decider
    fx = ack_phase(ex, good, 3.0)
    assert not fx.commands and not fx.to_decider
    [st] = fx.statuses
    assert st.phase == P.WORKLOAD_PHASE_ACTIVE and "clean-up failed" in st.reason
    assert bad.command_id in st.reason and "switch unreachable" in st.reason
    assert "w" not in ex.states


def test_a_clean_up_step_that_never_answers_ends_reported_after_its_attempts() -> None:
    ex = Executor()
    first, eng = decision()
    _active(ex, first)
    rel, _ = decision(kind=Kind.RELEASED, old=eng, rev=1)
    fx = ex.decision(rel, 0.0)
    assert [s.what for s in rel.steps] == ["remove old paths", "delete VMs"]
    ack_phase(ex, fx.commands[1:], 1.0)  # one removal never answers
    t = 0.0
    for _ in range(MAX_ATTEMPTS - 1):
        t += STEP_TIMEOUT_S + 1
        assert [c.command_id for c in ex.tick(t).commands] == [fx.commands[0].command_id]
    fx2 = ex.tick(t + STEP_TIMEOUT_S + 1)  # given up: on to deleting the VMs, nothing undone
    assert {c.action for c in fx2.commands} == {C.ACTION_DELETE} and not fx2.to_decider
    end = ack_phase(ex, fx2.commands, t + 40)
    [st] = end.statuses
    assert st.phase == P.WORKLOAD_PHASE_RELEASED and "timed out" in st.reason
    assert fx.commands[0].command_id in st.reason


def test_a_state_saved_before_undo_phases_existed_still_undoes_everything() -> None:
    ex = Executor()
    msg, _ = decision()
    ex.decision(msg, 0.0)
    first = [*msg.steps[0].sdn, *msg.steps[0].compute]
    ack_phase(ex, first, 1.0)
    job = ex.states["w"].running
    del job.undo_phase[:]  # as an older executor persisted it
    second = [*msg.steps[1].sdn, *msg.steps[1].compute]
    fx = ex.ack("w", second[0].command_id, False, "refused", 1.0)
    sent = list(fx.commands)
    while fx.commands:
        fx = ack_phase(ex, fx.commands, 2.0)
        sent += fx.commands
    assert {c.action for c in sent if hasattr(c, "action")} == {C.ACTION_DELETE}
    assert len([c for c in sent if hasattr(c, "action")]) == len(first)
    assert fx.to_decider
