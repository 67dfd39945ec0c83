"""Exactly-once consume → transform → produce loops on aiokafka, run inside the Faust worker.

Why our own loop and not Faust's streams: Faust commits stream offsets on its own schedule,
apart from what the agents sent (at-least-once), and around a rebalance faust-streaming 0.15
skips records (docs/STREAMS.md, "Known defect"): a record re-processed after a crash was
dead-lettered or forwarded twice, a skipped one was lost. Here every batch of one input
partition is one Kafka transaction: the outputs it derives (forwards, decisions, commands,
alarms, dead letters, mirrors) and the consumer offset that covers it are committed together,
or not at all. A crash at any point therefore yields each output once (consumers read with
`isolation_level="read_committed"`), and the next owner of the partition continues exactly
where the last committed batch ended.

Zombie fencing without KIP-447 (aiokafka's TxnOffsetCommit carries no group generation): one
transactional producer per input partition, its `transactional_id` named after the consumer
group, topic and partition. A worker that takes a partition over initialises that id, which
aborts whatever the previous owner left open and fences it: its next commit fails.

A handler (one per input topic) turns one partition's batch into outputs. It must not raise
for a bad record (it returns a dead letter instead); if it raises anyway, or the broker fails
the transaction, the batch is aborted, the handler told to forget what it folded since the
last commit (`aborted`), and the partition re-read from that commit, after a pause that grows
while the failure lasts (the loop never spins and never skips).

Fault injection for tests: `TANDEM_FAILPOINTS="<loop>:<topic base>:<point>:<n>"` (comma
separated) makes the process exit with status 137, as if SIGKILLed, the n-th time a
transaction of that loop on that topic reaches `<point>`: `after_send` (outputs sent, offsets
not yet) or `before_commit` (offsets added, not committed).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import ProducerFenced
from mode import Service

log = logging.getLogger(__name__)

FAILPOINTS_ENV = "TANDEM_FAILPOINTS"


@dataclass(frozen=True, slots=True)
class Record:
    """One input record as a handler sees it (timestamp in seconds since the epoch)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float


@dataclass(slots=True)
class Out:
    """One output record of a transaction (partition None: by key, Kafka's default)."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    partition: int | None = None


class Handler(Protocol):
    """What a loop calls for the partitions of one input topic."""

    async def assigned(self, tp: TopicPartition, committed: int) -> None:
        """This worker owns `tp` from the committed offset on (state up to it is rebuilt here)."""

    def revoked(self, tp: TopicPartition) -> None:
        """This worker no longer owns `tp`."""

    async def prepare(self, tp: TopicPartition, first_offset: int) -> None:
        """Called before the transaction of a batch starting at `first_offset` begins: the
        place for long work (rebuilding state) that must not hold a transaction open."""

    async def handle(self, records: list[Record]) -> list[Out]:
        """One partition's records in offset order → the outputs, in the order to send them."""

    def aborted(self, tp: TopicPartition) -> None:
        """The last batch of `tp` was not committed: forget what was folded since the commit."""

    async def before_commit(self) -> None:
        """Called inside each transaction before the offsets are added (e.g. to make sure a
        table's changelog writes are on the broker before the offset that covers them)."""


@dataclass
class PartitionState:
    producer: AIOKafkaProducer
    position: int  # next offset to process (= the committed offset after each commit)
    failures: int = 0
    retry_at: float = 0.0
    last_error: str = ""


@dataclass
class LoopStats:
    batches: int = 0
    records: int = 0
    outputs: int = 0
    aborts: int = 0
    fenced: int = 0
    commit_s_max: float = 0.0


class Failpoints:
    """`TANDEM_FAILPOINTS` of one loop (see the module docstring)."""

    def __init__(self, spec: str, loop: str) -> None:
        self.left: dict[tuple[str, str], int] = {}
        for item in filter(None, (x.strip() for x in spec.split(","))):
            parts = item.split(":")
            if len(parts) == 4 and parts[0] == loop:
                self.left[(parts[1], parts[2])] = int(parts[3])

    def hit(self, base: str, point: str) -> None:
        key = (base, point)
        if key not in self.left:
            return
        self.left[key] -= 1
        if self.left[key] <= 0:
            log.error("failpoint %s:%s reached: exiting as if killed", base, point)
            logging.shutdown()
            os._exit(137)


@dataclass
class TxLoop:
    """Settings of one loop; `service()` builds the mode Service that runs it in the app."""

    name: str
    broker: str
    app_id: str
    handlers: dict[str, Handler]  # full topic name -> handler
    bases: dict[str, str] = field(default_factory=dict)  # full topic name -> topic base
    max_records: int = 500
    poll_ms: int = 100
    # Partitions of the same number of different topics to the same worker (co-partitioned
    # topics, e.g. decisions and acks keyed by workload id), instead of round-robin.
    co_partitioned: bool = False
    # Every tick_s seconds, handlers with a `tick(tp, now)` may produce outputs on their own
    # (timeouts): sent in a transaction of that partition, without offsets.
    tick_s: float = 0.0
    stats: LoopStats = field(default_factory=LoopStats)
    parts: dict[TopicPartition, PartitionState] = field(default_factory=dict)
    consumer: AIOKafkaConsumer | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    paused: bool = False  # between a revocation and the next assignment

    @property
    def group_id(self) -> str:
        return f"{self.app_id}.{self.name}"

    def txn_id(self, tp: TopicPartition) -> str:
        return f"{self.group_id}.{tp.topic}.{tp.partition}"

    def health(self) -> dict[str, Any]:
        return {
            "group": self.group_id,
            "partitions": sorted(f"{tp.topic}[{tp.partition}]" for tp in self.parts),
            "failing": {f"{tp.topic}[{tp.partition}]": p.last_error
                        for tp, p in self.parts.items() if p.failures},
            "batches": self.stats.batches, "records": self.stats.records,
            "outputs": self.stats.outputs, "aborts": self.stats.aborts,
        }

    async def lag(self) -> dict[str, int]:
        """Records not yet processed, per "topic[partition]" this loop owns (asks the broker)."""
        if self.consumer is None or not self.parts:
            return {}
        tps = list(self.parts)
        ends = await self.consumer.end_offsets(tps)
        return {f"{tp.topic}[{tp.partition}]": max(0, ends[tp] - self.parts[tp].position)
                for tp in sorted(tps, key=lambda t: (t.topic, t.partition))}

    def service(self, before_start: Callable[[], Awaitable[None]] | None = None) -> type[Service]:
        return _make_service(self, before_start)


# A batch per partition holds at most this much (aiokafka's default is 16 KiB). A transaction's
# outputs to one partition (an executor's states, a decider's decisions: several KiB each) then
# go in one produce request: with 16 KiB, `send()` waited for a round trip every few records
# (a batch in flight per partition), which made one transaction of 100 reroutes' outputs take
# 270 ms to send. Under the broker's default 1 MiB limit; a bigger record gets a batch of its own.
MAX_BATCH_BYTES = 512 * 1024


def transactional_producer(broker: str, transactional_id: str) -> AIOKafkaProducer:
    """The producer of one exactly-once loop (or of the decider): idempotent, transactional,
    sending at once (no linger: a batch is one transaction's outputs anyway)."""
    return AIOKafkaProducer(
        bootstrap_servers=broker, transactional_id=transactional_id, acks="all",
        enable_idempotence=True, linger_ms=0, retry_backoff_ms=10,
        max_batch_size=MAX_BATCH_BYTES,
        # An open transaction of a worker that died blocks read_committed readers of its
        # output partitions until the next owner fences it or this timeout ends it.
        transaction_timeout_ms=30_000, max_request_size=64 * 1024 * 1024)


def _make_service(loop: TxLoop, before_start: Callable[[], Awaitable[None]] | None) -> type[Service]:
    fail = Failpoints(os.environ.get(FAILPOINTS_ENV, ""), loop.name)
    lock = asyncio.Lock()

    async def new_producer(tp: TopicPartition) -> AIOKafkaProducer:
        producer = transactional_producer(loop.broker, loop.txn_id(tp))
        await producer.start()  # initialises the transactional id: fences the last owner
        return producer

    async def drop(tp: TopicPartition) -> None:
        st = loop.parts.pop(tp, None)
        handler = loop.handlers.get(tp.topic)
        if handler is not None:
            handler.revoked(tp)
        if st is not None:
            try:
                await st.producer.stop()
            except Exception as exc:  # stopping anyway
                log.warning("%s: stopping the producer of %s failed: %r", loop.name, tp, exc)

    class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
        async def on_partitions_revoked(self, revoked: Any) -> None:
            # Wait for the batch in flight to be committed or aborted, then process nothing
            # until the new assignment is known (records fetched meanwhile are re-read).
            async with lock:
                loop.paused = True

        async def on_partitions_assigned(self, assigned: Any) -> None:
            async with lock:
                mine = set(assigned)
                for tp in [tp for tp in loop.parts if tp not in mine]:
                    await drop(tp)
                # Producers first: initialising a partition's transactional id completes or
                # aborts the last owner's transaction, so the committed offset read next is
                # final. Producers of partitions this worker keeps are kept.
                new = [tp for tp in mine if tp not in loop.parts]
                producers = await asyncio.gather(*(new_producer(tp) for tp in new))
                consumer = loop.consumer
                assert consumer is not None
                for tp, producer in zip(new, producers):
                    loop.parts[tp] = PartitionState(producer, 0)
                for tp in sorted(mine, key=lambda t: (t.topic, t.partition)):
                    st = loop.parts[tp]
                    st.position = await consumer.committed(tp) or 0
                    st.failures, st.retry_at = 0, 0.0
                    consumer.seek(tp, st.position)
                    await loop.handlers[tp.topic].assigned(tp, st.position)
                loop.paused = False
                log.info("%s: assigned %s", loop.name,
                         ", ".join(sorted(f"{t.topic}[{t.partition}]" for t in mine)) or "nothing")
                loop.ready.set()

    class TxLoopService(Service):  # type: ignore[misc]
        """Runs `loop` inside the Faust worker."""

        async def on_start(self) -> None:
            if before_start is not None:
                await before_start()
            from aiokafka.coordinator.assignors.range import RangePartitionAssignor
            from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

            loop.consumer = AIOKafkaConsumer(
                bootstrap_servers=loop.broker, group_id=loop.group_id,
                enable_auto_commit=False, auto_offset_reset="earliest",
                isolation_level="read_committed",
                partition_assignment_strategy=(
                    (RangePartitionAssignor,) if loop.co_partitioned
                    else (RoundRobinPartitionAssignor,)),
                # Room for a few oversized (1 MB) records per round trip: a backlog of them
                # is read at the speed of the link, not of the round trips.
                max_partition_fetch_bytes=16 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
            await loop.consumer.start()
            loop.consumer.subscribe(list(loop.handlers), listener=Listener())

        async def on_stop(self) -> None:
            # Under the lock: the batch in flight is committed (or aborted) first.
            async with lock:
                loop.paused = True
                for tp in list(loop.parts):
                    await drop(tp)
            if loop.consumer is not None:
                await loop.consumer.stop()  # leaves the group: partitions move at once

        @Service.task
        async def _run(self) -> None:
            consumer = loop.consumer
            assert consumer is not None
            errors = 0
            next_tick = time.monotonic() + loop.tick_s
            while not self.should_stop:
                _resume_due(consumer)
                if loop.tick_s and time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + loop.tick_s
                    async with lock:
                        if not loop.paused:
                            await _ticks()
                try:
                    batch = await consumer.getmany(timeout_ms=loop.poll_ms,
                                                   max_records=loop.max_records)
                    errors = 0
                except Exception as exc:  # the broker or the group: say so, retry, never die
                    errors += 1
                    delay = min(5.0, 0.2 * 2 ** min(errors - 1, 5))
                    log.error("%s: fetching failed (%r); again in %.1f s", loop.name, exc, delay)
                    await asyncio.sleep(delay)
                    continue
                if not batch:
                    continue
                async with lock:
                    if loop.paused:
                        continue  # a rebalance began: the new owner re-reads these
                    commits = []
                    for tp, recs in batch.items():
                        commit = await _one_partition(tp, recs)
                        if commit is not None:
                            commits.append(commit)
                    for res in await asyncio.gather(*commits, return_exceptions=True):
                        if isinstance(res, BaseException):  # _commit handles its own errors
                            log.error("%s: a commit failed unexpectedly: %r", loop.name, res)

    async def _ticks() -> None:
        now = time.time()
        for tp, st in list(loop.parts.items()):
            tick = getattr(loop.handlers[tp.topic], "tick", None)
            if tick is None or st.retry_at:
                continue
            outs = await tick(tp, now)
            if not outs:
                continue
            try:
                await st.producer.begin_transaction()
                for o in outs:
                    await st.producer.send(o.topic, o.value, key=o.key, partition=o.partition)
                await loop.handlers[tp.topic].before_commit()
                await st.producer.commit_transaction()
            except ProducerFenced:
                await _fenced(tp)
            except Exception as exc:
                await _abort(tp, st, exc)

    def _resume_due(consumer: AIOKafkaConsumer) -> None:
        now = time.monotonic()
        for tp, st in loop.parts.items():
            if st.retry_at and now >= st.retry_at:
                st.retry_at = 0.0
                consumer.seek(tp, st.position)
                consumer.resume(tp)

    async def _one_partition(tp: TopicPartition, recs: list[Any]) -> Awaitable[None] | None:
        """Handle one partition's batch and send its outputs in its transaction; return the
        commit still to await (the caller awaits the commits of all partitions together: each
        has its own producer, and a commit is mostly waiting for the broker)."""
        st = loop.parts.get(tp)
        if st is None:  # revoked since the fetch
            return None
        if st.retry_at:  # failing: paused until its retry time, then re-read from the commit
            return None
        # Below the position: already committed (fetched before a seek back). A gap above it
        # is normal: transaction markers and compaction leave holes in the offsets.
        recs = [r for r in recs if r.offset >= st.position]
        if not recs:
            return None
        handler = loop.handlers[tp.topic]
        base = loop.bases.get(tp.topic, tp.topic)
        producer = st.producer
        started = time.monotonic()
        try:
            await handler.prepare(tp, recs[0].offset)
            await producer.begin_transaction()
            outs = await handler.handle([
                Record(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp / 1000.0)
                for r in recs])
            for o in outs:
                await producer.send(o.topic, o.value, key=o.key, partition=o.partition)
            fail.hit(base, "after_send")
        except ProducerFenced:
            await _fenced(tp)
            return None
        except Exception as exc:
            await _abort(tp, st, exc)
            return None
        return _commit(tp, st, handler, base, recs, len(outs), started)

    async def _commit(tp: TopicPartition, st: PartitionState, handler: Handler, base: str,
                      recs: list[Any], n_outs: int, started: float) -> None:
        producer = st.producer
        try:
            await handler.before_commit()
            await producer.send_offsets_to_transaction({tp: recs[-1].offset + 1}, loop.group_id)
            fail.hit(base, "before_commit")
            await producer.commit_transaction()
        except ProducerFenced:
            await _fenced(tp)
            return
        except Exception as exc:
            await _abort(tp, st, exc)
            return
        st.position = recs[-1].offset + 1
        if st.failures:
            log.info("%s: %s is processing again after %d failed attempt(s)", loop.name, tp,
                     st.failures)
        st.failures, st.last_error = 0, ""
        stats = loop.stats
        stats.batches += 1
        stats.records += len(recs)
        stats.outputs += n_outs
        stats.commit_s_max = max(stats.commit_s_max, time.monotonic() - started)

    async def _fenced(tp: TopicPartition) -> None:
        loop.stats.fenced += 1
        log.warning("%s: %s was taken over by another worker (fenced): dropping it", loop.name, tp)
        await drop(tp)

    async def _abort(tp: TopicPartition, st: PartitionState, exc: Exception) -> None:
        loop.stats.aborts += 1
        st.failures += 1
        st.last_error = repr(exc)[:300]
        delay = min(5.0, 0.2 * 2 ** min(st.failures - 1, 5))
        st.retry_at = time.monotonic() + delay
        log.error("%s: batch of %s aborted (%r); re-reading from offset %d in %.1f s", loop.name,
                  tp, exc, st.position, delay, exc_info=st.failures == 1)
        loop.handlers[tp.topic].aborted(tp)
        try:
            await st.producer.abort_transaction()
        except Exception as abort_exc:  # the producer is unusable: a new one fences the txn
            log.warning("%s: abort of %s failed (%r): new producer", loop.name, tp, abort_exc)
            try:
                await st.producer.stop()
            except Exception:
                pass
            try:
                st.producer = await new_producer(tp)
            except Exception as new_exc:
                log.error("%s: no producer for %s yet: %r", loop.name, tp, new_exc)
        assert loop.consumer is not None
        loop.consumer.pause(tp)  # resumed, from the committed position, at st.retry_at

    return TxLoopService
