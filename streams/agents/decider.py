"""Decider handler: folds the decider log with the pure `tandem.decider.Decider` and publishes
decisions, per-site SDN and compute commands, and alarms; records workloads in a table.

The decider topic has one partition, so exactly one worker decides at a time. Each batch is a
transaction (`tandem.streams.txloop`): the outputs of its inputs and the offset after them are
committed together, so a worker taking over finds every input below the committed offset
decided *and* published, and none above it. It rebuilds the decider's state by folding the log
from offset 0 up to that offset (publishing nothing), then goes on from there. Recovery after
an aborted transaction is the same.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiokafka import TopicPartition

from tandem.decider import Decider, Outputs
from tandem.streams import tables
from tandem.streams import topics as T
from tandem.streams.agents.base import ensure_site_topics, global_table
from tandem.streams.deadletter import dead_letter
from tandem.streams.readback import read_topic
from tandem.streams.txloop import Out, Record
from tandem.v1 import decision_pb2

log = logging.getLogger(__name__)
CONSUMER = "decider"


class DeciderHandler:
    """The decider's memory on this worker: the pure decider and the next offset it folds."""

    def __init__(self, tandem: Any, workloads: Any) -> None:
        self.tandem = tandem
        self.workloads = workloads
        self.decider: Decider | None = None
        self.next_offset: int | None = None
        self.recoveries = 0
        prefix = tandem.settings.topic_prefix
        self.prefix = prefix
        self.broker = tandem.settings.broker
        self.log_topic = T.SPECS[T.DECIDER_BASE].name(prefix)
        self.decisions = T.SPECS[T.DECISIONS_BASE].name(prefix)
        self.alarms = T.SPECS[T.ALARMS_BASE].name(prefix)
        self.dead = T.SPECS[T.DEAD_LETTERS_BASE].name(prefix)

    async def assigned(self, tp: TopicPartition, committed: int) -> None:
        if self.decider is not None and self.next_offset == committed:
            return  # kept through the rebalance, and nobody else committed meanwhile
        await self.recover(committed)

    def revoked(self, tp: TopicPartition) -> None:
        self.decider, self.next_offset = None, None

    def aborted(self, tp: TopicPartition) -> None:
        # The state holds inputs whose outputs were not committed: rebuilt on the next batch.
        self.decider, self.next_offset = None, None

    async def before_commit(self) -> None:
        await tables.flush(self.tandem.app)  # the workloads table's writes first

    async def recover(self, upto: int) -> None:
        """Fold the log below `upto` (every input there is decided and published already)."""
        started = time.monotonic()
        decider = Decider()
        records = await read_topic(self.broker, self.log_topic, upto) if upto > 0 else []
        bad = 0
        for r in records:
            bad += decider.fold_record(r.value, r.timestamp / 1000.0).invalid is not None
        self.decider, self.next_offset = decider, upto
        self.recoveries += 1
        log.info("decider: state rebuilt by folding %d inputs (offsets below %d; %d refused) in "
                 "%.2f s", len(records), upto, bad, time.monotonic() - started)

    async def handle(self, records: list[Record]) -> list[Out]:
        if self.decider is None or self.next_offset is None:
            # After an abort: everything below the first record re-read is committed (a gap
            # before it holds transaction markers only).
            await self.recover(records[0].offset)
        decider = self.decider
        assert decider is not None
        outs: list[Out] = []
        for rec in records:
            out = decider.fold_record(rec.value, rec.timestamp)
            if out.invalid is not None:
                outs.append(dead_letter(self.dead, rec, out.invalid.reason, out.invalid.detail,
                                        CONSUMER))
                continue
            outs.extend(await self.outputs(out))
        self.next_offset = records[-1].offset + 1
        return outs

    async def outputs(self, out: Outputs) -> list[Out]:
        """An input's outputs in publication order; the workloads table follows decisions."""
        res: list[Out] = []
        for d in out.decisions:
            res.append(Out(self.decisions, d.SerializeToString(), key=d.workload_id.encode()))
            if d.kind in (decision_pb2.DECISION_KIND_RELEASED, decision_pb2.DECISION_KIND_PREEMPTED):
                tables.delete(self.workloads, d.workload_id)
            elif d.kind != decision_pb2.DECISION_KIND_REJECTED:
                tables.put(self.workloads, d.workload_id, d.SerializeToString())
        for cmd in out.sdn:
            await ensure_site_topics(self.tandem, cmd.site_id)
            res.append(Out(T.sdn_commands_topic(cmd.site_id, self.prefix), cmd.SerializeToString(),
                           key=cmd.command_id.encode()))
        for cc in out.compute:
            await ensure_site_topics(self.tandem, cc.site_id)
            res.append(Out(T.compute_commands_topic(cc.site_id, self.prefix),
                           cc.SerializeToString(), key=cc.vm.vm_name.encode()))
        for a in out.alarms:
            res.append(Out(self.alarms, a.SerializeToString(), key=a.workload_id.encode()))
        return res


def install(tandem: Any) -> DeciderHandler:
    workloads = global_table(tandem.app, "workloads")
    tandem.tables["workloads"] = workloads
    handler = DeciderHandler(tandem, workloads)
    tandem.decider = handler
    return handler
