"""Decider agent: folds the decider log with the pure `tandem.decider.Decider` and publishes
decisions, per-site SDN and compute commands, and alarms; records workloads in a table.

The decider topic has one partition, so exactly one worker decides at a time and every worker
that takes over derives the same state: on its first record (and whenever the offsets it sees
are not the continuation of what it folded) it re-folds the log from offset 0 up to that record
and reads the ids of the decisions already on the decisions topic. A record redelivered after a
crash or a rebalance is folded again — deterministically, to the same decision id — and that
decision is not published a second time: one decision per request, none lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from tandem.decider import Decider, Outputs
from tandem.streams import topics as T
from tandem.streams.agents.base import ensure_site_topics, global_table
from tandem.streams.deadletter import dead_letter
from tandem.v1 import decider_pb2, decision_pb2
from tandem.validation import PROCESSING_ERROR, InvalidEvent, check_meta, decode

log = logging.getLogger(__name__)


async def read_topic(bootstrap: str, topic: str, end: int | None = None) -> list[Any]:
    """Records of partition 0 of `topic` from offset 0 up to `end` (default: the current end)."""
    return await _read(bootstrap, topic, only_partition=0, end=end)


async def read_all_partitions(bootstrap: str, topic: str) -> list[Any]:
    """Every record of `topic` up to its current end, partition by partition."""
    return await _read(bootstrap, topic)


async def _read(bootstrap: str, topic: str, only_partition: int | None = None,
                end: int | None = None, timeout: float = 60.0) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed", auto_offset_reset="earliest")
    await consumer.start()
    try:
        parts = [only_partition] if only_partition is not None else sorted(
            await partitions_of(consumer, topic))
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        if end is not None:
            ends = {tp: min(e, end) for tp, e in ends.items()}
        for tp in tps:
            consumer.seek(tp, 0)
        out: list[Any] = []
        # Done with a partition once its last record below `end` has arrived; never trust
        # position() here (it can run ahead of what was delivered).
        need = {tp: ends[tp] for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + timeout
        while need:
            if time.monotonic() > deadline:
                raise RuntimeError(f"reading {topic} timed out; still missing {need}")
            batch = await consumer.getmany(*need, timeout_ms=500)
            for tp, records in batch.items():
                for r in records:
                    if r.offset < need.get(tp, 0):
                        out.append(r)
                if records and records[-1].offset + 1 >= need.get(tp, 0):
                    need.pop(tp, None)
        return out
    finally:
        await consumer.stop()


async def partitions_of(consumer: AIOKafkaConsumer, topic: str, timeout: float = 10.0) -> set[int]:
    """The partitions of an existing topic (metadata can lag just after the client starts)."""
    deadline = time.monotonic() + timeout
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return set(parts)
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {topic!r} does not exist (no metadata in {timeout:.0f} s)")
        await consumer._client.force_metadata_update()  # noqa: SLF001 - no public call for it
        await asyncio.sleep(0.1)


class DeciderRunner:
    """The agent's memory: the pure decider, the next expected offset, what was published."""

    def __init__(self, tandem: Any) -> None:
        self.tandem = tandem
        self.decider: Decider | None = None
        self.next_offset: int | None = None
        self.published: set[str] = set()
        self.prefix = tandem.settings.topic_prefix
        self.broker = tandem.settings.broker

    async def recover(self, upto: int, workloads: Any) -> None:
        """Re-fold the log below `upto`, then publish what no worker published for it.

        Usually every input below `upto` was decided and published by a previous owner (the
        group's committed offset is `upto`). Not always: a worker can crash between folding
        and publishing, and the stream can hand this agent an offset beyond the next one
        (seen with faust-streaming around a rebalance: offsets skipped). The decisions topic
        says which decision ids exist; an input whose decisions are missing there is
        published now, with its commands and alarms, in log order."""
        started = time.monotonic()
        decider = Decider()
        decisions = await read_all_partitions(self.broker,
                                              T.SPECS[T.DECISIONS_BASE].name(self.prefix))
        self.published = {decision_pb2.Decision.FromString(r.value).meta.event_id
                          for r in decisions}
        already = len(self.published)
        records = await read_topic(self.broker, T.SPECS[T.DECIDER_BASE].name(self.prefix), upto)
        missing: list[tuple[int, Outputs]] = []
        for r in records:
            try:
                inp = decode(decider_pb2.DeciderInput, r.value)
                check_meta(inp)
            except InvalidEvent:
                continue  # it was dead-lettered when first seen
            try:
                out = decider.fold(inp)
            except Exception:  # dead-lettered as processing_error when first seen
                log.exception("decider: input at offset %d fails again on recovery", r.offset)
                continue
            if any(d.meta.event_id not in self.published for d in out.decisions):
                missing.append((r.offset, out))
        self.decider, self.next_offset = decider, upto
        for off, out in missing:
            log.warning("decider: input at offset %d was folded but its decision was never "
                        "published: publishing it now", off)
            await self.publish(out, workloads)
        log.info("decider: recovered by folding %d inputs (offsets 0..%d) in %.2f s; "
                 "%d decisions already published, %d published now", len(records), upto - 1,
                 time.monotonic() - started, already, len(self.published) - already)

    async def publish(self, out: Outputs, workloads: Any) -> None:
        t = self.tandem
        for d in out.decisions:
            if d.meta.event_id in self.published:
                log.info("decider: decision %s was already published: not repeated",
                         d.meta.event_id)
                continue
            await t.topic(T.DECISIONS_BASE).send(key=d.workload_id.encode(),
                                                 value=d.SerializeToString())
            self.published.add(d.meta.event_id)
            if d.kind in (decision_pb2.DECISION_KIND_RELEASED, decision_pb2.DECISION_KIND_PREEMPTED):
                workloads.pop(d.workload_id, None)
            elif d.kind != decision_pb2.DECISION_KIND_REJECTED:
                workloads[d.workload_id] = d.SerializeToString()
        for cmd in out.sdn:
            await ensure_site_topics(t, cmd.site_id)
            await t.app.send(T.sdn_commands_topic(cmd.site_id, self.prefix),
                             key=cmd.command_id.encode(), value=cmd.SerializeToString())
        for cc in out.compute:
            await ensure_site_topics(t, cc.site_id)
            await t.app.send(T.compute_commands_topic(cc.site_id, self.prefix),
                             key=cc.vm.vm_name.encode(), value=cc.SerializeToString())
        for a in out.alarms:
            await t.topic(T.ALARMS_BASE).send(key=a.workload_id.encode(), value=a.SerializeToString())


def install(tandem: Any) -> None:
    app = tandem.app
    workloads = global_table(app, "workloads")
    tandem.tables["workloads"] = workloads
    runner = DeciderRunner(tandem)
    tandem.decider = runner
    dead = tandem.topic(T.DEAD_LETTERS_BASE)

    @app.agent(tandem.topic(T.DECIDER_BASE), name="tandem.decider", concurrency=1)
    async def decide_agent(stream: Any) -> None:
        async for event in stream.events():
            offset = event.message.offset
            if runner.decider is None or runner.next_offset != offset:
                await runner.recover(offset, workloads)
            assert runner.decider is not None
            runner.next_offset = offset + 1
            try:
                inp = decode(decider_pb2.DeciderInput, event.value)
                check_meta(inp)
            except InvalidEvent as bad:
                await dead_letter(dead, event, bad.reason, bad.detail, "decider")
                continue
            try:
                out = runner.decider.fold(inp)
            except Exception as exc:  # a bug: keep the record, say why, go on
                log.exception("decider failed on input %s", inp.meta.event_id)
                await dead_letter(dead, event, PROCESSING_ERROR, repr(exc), "decider")
                continue
            await runner.publish(out, workloads)
