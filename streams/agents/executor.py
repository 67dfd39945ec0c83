"""The executor's handler: decisions and acknowledgements in, commands and statuses out.

Runs the pure `tandem.executor.Executor` in the worker's `executor` loop
(`tandem.streams.txloop`, co-partitioned: decisions, SDN acks and compute acks are all keyed by
workload id with three partitions, so the worker that holds partition p of the decisions also
holds partition p of both acknowledgement topics, and with them every fact about the workloads
hashed there). Each batch is a transaction: the commands of the steps it starts (to each
site's command topic), the workloads' statuses, the verdicts for the decider (on
`tandem.control`: `ExecutionFailed` when a decision could not be carried out, `ExecutionDone`
when a stage of a re-optimisation was), and the new executor state of
every workload it touched (`tandem.executor-state`, compacted) — committed with the input
offsets. A worker taking partition p over reads partition p of the state topic and resumes
exactly where the last commit left it: no step is lost and none is sent twice. Every second
the handler looks for steps past their deadline (`Executor.tick`).
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import TopicPartition

from tandem.events import new_meta
from tandem.executor import Effects, Executor
from tandem.streams import topics as T
from tandem.streams.agents.base import ensure_site_topics
from tandem.streams.deadletter import dead_letter
from tandem.streams.readback import read_all_partitions
from tandem.streams.txloop import Out, Record
from tandem.v1 import commands_pb2, decision_pb2
from tandem.validation import PROCESSING_ERROR, InvalidEvent, decode

log = logging.getLogger(__name__)
CONSUMER = "executor"


class ExecutorHandler:
    """One handler for the three co-partitioned topics of the executor loop."""

    def __init__(self, tandem: Any) -> None:
        self.tandem = tandem
        prefix = tandem.settings.topic_prefix
        self.prefix, self.broker = prefix, tandem.settings.broker
        name = lambda base: T.SPECS[base].name(prefix)  # noqa: E731
        self.decisions, self.sdn_acks = name(T.DECISIONS_BASE), name(T.SDN_ACKS_BASE)
        self.compute_acks = name(T.COMPUTE_ACKS_BASE)
        self.state_topic, self.statuses = name(T.EXECUTOR_STATE_BASE), name(T.WORKLOAD_STATUS_BASE)
        self.control, self.dead = name(T.CONTROL_BASE), name(T.DEAD_LETTERS_BASE)
        self.executor = Executor()
        self.partition_of: dict[str, int] = {}  # workload -> partition (for ticks and forgetting)
        self.restored: set[int] = set()

    def topics(self) -> list[str]:
        return [self.decisions, self.sdn_acks, self.compute_acks]

    async def assigned(self, tp: TopicPartition, committed: int) -> None:
        if tp.topic == self.decisions and tp.partition not in self.restored:
            await self._restore(tp.partition)

    def revoked(self, tp: TopicPartition) -> None:
        if tp.topic == self.decisions:
            self._forget(tp.partition)

    def aborted(self, tp: TopicPartition) -> None:
        # The state holds effects that were not committed: read it again from the topic.
        self._forget(tp.partition)

    async def prepare(self, tp: TopicPartition, first_offset: int) -> None:
        if tp.partition not in self.restored:
            await self._restore(tp.partition)

    async def before_commit(self) -> None:
        return None

    async def _restore(self, partition: int) -> None:
        recs = [r for r in await read_all_partitions(self.broker, self.state_topic)
                if r.partition == partition]
        latest: dict[str, bytes | None] = {}
        for r in recs:
            latest[(r.key or b"").decode()] = r.value
        for wid, value in latest.items():
            if value:
                self.executor.states[wid] = decision_pb2.ExecutorState.FromString(value)
                self.partition_of[wid] = partition
        self.restored.add(partition)
        log.info("executor: partition %d resumed with %d workload(s) in progress", partition,
                 sum(1 for v in latest.values() if v))

    def _forget(self, partition: int) -> None:
        for wid in [w for w, p in self.partition_of.items() if p == partition]:
            self.executor.states.pop(wid, None)
            del self.partition_of[wid]
        self.restored.discard(partition)

    async def handle(self, records: list[Record]) -> list[Out]:
        outs: list[Out] = []
        for rec in records:
            try:
                fx = self._fold(rec)
            except InvalidEvent as bad:
                outs.append(dead_letter(self.dead, rec, bad.reason, bad.detail, CONSUMER))
                continue
            except Exception as exc:  # never lose a record to a bug: keep it, say why
                log.exception("executor failed on %s[%d]@%d", rec.topic, rec.partition, rec.offset)
                outs.append(dead_letter(self.dead, rec, PROCESSING_ERROR, repr(exc), CONSUMER))
                continue
            outs += await self._outputs(fx, rec.partition)
        return outs

    def _fold(self, rec: Record) -> Effects:
        if rec.topic == self.decisions:
            d = decode(decision_pb2.Decision, rec.value)
            self.partition_of[d.workload_id] = rec.partition
            return self.executor.decision(d, rec.timestamp)
        schema = commands_pb2.SdnAck if rec.topic == self.sdn_acks else commands_pb2.ComputeAck
        ack = decode(schema, rec.value)
        ok = ack.status in (commands_pb2.ACK_STATUS_OK, commands_pb2.ACK_STATUS_NOOP)
        return self.executor.ack(ack.workload_id, ack.command_id, ok, ack.error, rec.timestamp)

    async def tick(self, tp: TopicPartition, now: float) -> list[Out]:
        if tp.topic != self.decisions:
            return []
        mine = [w for w, p in self.partition_of.items() if p == tp.partition]
        return await self._outputs(self.executor.tick(now, mine), tp.partition)

    async def _outputs(self, fx: Effects, partition: int) -> list[Out]:
        outs: list[Out] = []
        for cmd in fx.commands:
            await ensure_site_topics(self.tandem, cmd.site_id)
            if isinstance(cmd, commands_pb2.SdnCommand):
                rid = (cmd.install.reservation_id if cmd.WhichOneof("op") == "install"
                       else cmd.remove.reservation_id)
                outs.append(Out(T.sdn_commands_topic(cmd.site_id, self.prefix),
                                cmd.SerializeToString(), key=rid.encode()))
            else:
                outs.append(Out(T.compute_commands_topic(cmd.site_id, self.prefix),
                                cmd.SerializeToString(), key=cmd.vm.vm_name.encode()))
        for st in fx.statuses:
            outs.append(Out(self.statuses, st.SerializeToString(), key=st.workload_id.encode()))
        for inp in fx.to_decider:
            outs.append(Out(self.control, inp.SerializeToString(), key=b"", partition=0))
        for wid in sorted(fx.changed):
            state = self.executor.states.get(wid)
            if state is not None:
                state.meta.CopyFrom(new_meta("streams/executor"))
            outs.append(Out(self.state_topic, state.SerializeToString() if state else None,
                            key=wid.encode(), partition=partition))
            if state is None:
                self.partition_of.pop(wid, None)
        return outs


def install(tandem: Any) -> ExecutorHandler:
    handler = ExecutorHandler(tandem)
    tandem.executor = handler
    return handler
