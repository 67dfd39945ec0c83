"""The decider reads its inputs itself: one hop from an order to its decision, exactly once.

Decisions share capacity, so one decider folds every input that can change one, in one order.
It used to read a log that other handlers filled (requests, inventory and link state were each
read, validated and forwarded to `tandem.decider`, which the decider then read): two hops, two
transactions, two decodes and two validations per input, for no gain — the order was decided by
the forwarding anyway. Now the worker holding the decider reads the input topics directly and
*writes* the decider log as the record of what it folded, in the order it folded it:

- **Who decides**: the member of consumer group `<app id>.decider` that is assigned partition 0
  of the decider log (the partition is a lease; its records are never fetched from this group).
- **Inputs**: all partitions of `tandem.requests`, `tandem.inventory`, `tandem.link-state` and
  `tandem.control` (operator orders: re-optimisation), read with `read_committed` and with their
  offsets stored under group `<app id>.decider-inputs`. Capacity windows announced in the
  inventory become clock ticks generated here.
- **One transaction per batch**, with one transactional producer (`<app id>.decider`, whose
  initialisation fences the previous holder): the log records of the inputs folded, their
  outputs (decisions, SDN and compute commands, alarms, the NOC's JSON mirror of link state),
  dead letters for refused records, a snapshot when one is due (its head, encoded in a forked
  child meanwhile, goes with a later batch: `tandem.streams.agents.decider`), and the input
  offsets. A crash at any point yields each once; a worker taking over rebuilds the decider
  from the log (`tandem.streams.agents.decider`) and continues from the committed input
  offsets.
- The `inventory`, `link_state` and `workloads` tables are written here, from what the decider
  accepted: they show exactly the decider's topology.

A failed batch is aborted, the decider forgotten and rebuilt, the inputs re-read from their
committed offsets after a pause that doubles up to 5 s. `TANDEM_FAILPOINTS="decider:tandem.decider:
<after_send|before_commit>:<n>"` makes the process exit (137) inside the n-th transaction.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import ProducerFenced
from mode import Service

from tandem.streams import topics as T
from tandem.streams.agents import inventory as inv
from tandem.streams.agents.base import ensure_site_topics
from tandem.streams.agents.noc_mirror import to_json
from tandem.streams.compat import faust_table_writes as tables
from tandem.streams.deadletter import dead_letter
from tandem.streams.readback import partitions_of
from tandem.streams.txloop import (FAILPOINTS_ENV, Failpoints, Out, Record,
                                   transactional_producer)

log = logging.getLogger(__name__)
CONSUMER = "decider"
KINDS = {T.REQUESTS_BASE: "request", T.INVENTORY_BASE: "inventory",
         T.LINK_STATE_BASE: "link_state", T.CONTROL_BASE: "control"}


@dataclass
class DeciderStats:
    batches: int = 0
    records: int = 0
    logged: int = 0
    refused: int = 0
    aborts: int = 0
    takeovers: int = 0
    commit_s_max: float = 0.0


@dataclass
class DeciderLoop:
    """Settings and state of the decider service (see the module docstring)."""

    tandem: Any
    memory: Any  # tandem.streams.agents.decider.DeciderMemory
    max_records: int = 500
    poll_ms: int = 50
    owner: bool = False
    wanted: bool = False
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    stats: DeciderStats = field(default_factory=DeciderStats)
    failures: int = 0
    retry_at: float = 0.0
    last_error: str = ""
    producer: AIOKafkaProducer | None = None
    lease: AIOKafkaConsumer | None = None
    inputs: AIOKafkaConsumer | None = None
    ticks_since: float = 0.0

    def __post_init__(self) -> None:
        st = self.tandem.settings
        self.app_id, self.broker, self.prefix = st.app_id, st.broker, st.topic_prefix
        name = lambda base: T.SPECS[base].name(self.prefix)  # noqa: E731
        self.log_topic = name(T.DECIDER_BASE)
        self.input_topics = {name(b): kind for b, kind in KINDS.items()}
        self.dead = name(T.DEAD_LETTERS_BASE)
        self.mirror = name(T.NOC_LINK_STATE_JSON_BASE)
        self.alarms = name(T.ALARMS_BASE)

    @property
    def inputs_group(self) -> str:
        return f"{self.app_id}.decider-inputs"

    def health(self) -> dict[str, Any]:
        return {"group": f"{self.app_id}.decider", "owner": self.owner,
                "inputs": {f"{tp.topic}[{tp.partition}]": off
                           for tp, off in sorted(self.positions.items(),
                                                 key=lambda t: (t[0].topic, t[0].partition))},
                "failing": self.last_error if self.failures else "",
                "batches": self.stats.batches, "records": self.stats.records,
                "logged": self.stats.logged, "refused": self.stats.refused,
                "aborts": self.stats.aborts, "takeovers": self.stats.takeovers}

    async def lag(self) -> dict[str, int]:
        if self.inputs is None or not self.positions:
            return {}
        ends = await self.inputs.end_offsets(list(self.positions))
        return {f"{tp.topic}[{tp.partition}]": max(0, ends[tp] - pos)
                for tp, pos in self.positions.items()}

    def committed_position(self, topic: str, partition: int) -> int:
        """The next input offset to fold on `topic[partition]` (-1 when not the decider)."""
        return self.positions.get(TopicPartition(topic, partition), -1) if self.owner else -1

    def service(self) -> type[Service]:
        return _make_service(self)


def _make_service(loop: DeciderLoop) -> type[Service]:
    fail = Failpoints(os.environ.get(FAILPOINTS_ENV, ""), "decider")
    lock = asyncio.Lock()
    journal = TopicPartition(loop.log_topic, 0)

    class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
        async def on_partitions_revoked(self, revoked: Any) -> None:
            async with lock:  # the batch in flight ends first
                loop.wanted = False
                await _release()

        async def on_partitions_assigned(self, assigned: Any) -> None:
            # Taken over in the run task (a rebuild may take seconds: not in this callback).
            loop.wanted = journal in set(assigned)
            if loop.wanted and loop.lease is not None:
                loop.lease.pause(journal)  # a lease: its records are not read here
            log.info("decider: group joined; %s", "this worker holds the decider" if loop.wanted
                     else "standing by (another worker holds the decider)")

    async def _release() -> None:
        if not loop.owner and loop.producer is None and loop.inputs is None:
            return
        loop.owner = False
        loop.memory.reset()
        for closing in (loop.inputs, loop.producer):
            if closing is not None:
                try:
                    await closing.stop()
                except Exception as exc:  # stopping anyway
                    log.warning("decider: stopping a client failed: %r", exc)
        loop.inputs, loop.producer = None, None
        loop.positions.clear()
        log.info("decider: released")

    async def _take_over() -> None:
        started = time.monotonic()
        producer = transactional_producer(loop.broker, f"{loop.app_id}.decider")
        await producer.start()  # fences the previous holder, completes or aborts its batch
        inputs = AIOKafkaConsumer(
            bootstrap_servers=loop.broker, group_id=loop.inputs_group, enable_auto_commit=False,
            auto_offset_reset="earliest", isolation_level="read_committed",
            max_partition_fetch_bytes=16 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
        await inputs.start()
        tps = []
        for topic in loop.input_topics:
            tps += [TopicPartition(topic, p) for p in sorted(await partitions_of(inputs, topic))]
        inputs.assign(tps)
        for tp in tps:
            loop.positions[tp] = await inputs.committed(tp) or 0
            inputs.seek(tp, loop.positions[tp])
        ends = await inputs.end_offsets([journal])
        loop.producer, loop.inputs = producer, inputs
        await loop.memory.recover(ends[journal])
        loop.ticks_since = loop.memory.last_time or time.time()
        loop.owner = True
        loop.stats.takeovers += 1
        log.info("decider: taken over in %.2f s (log of %d records; inputs from %s)",
                 time.monotonic() - started, ends[journal],
                 ", ".join(f"{tp.topic}[{tp.partition}]@{o}" for tp, o in loop.positions.items()))

    async def _transact(batch: dict[TopicPartition, list[Any]], now: float) -> None:
        producer, memory = loop.producer, loop.memory
        assert producer is not None and memory.decider is not None
        started = time.monotonic()
        recs = [Record(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp / 1000.0)
                for tp in sorted(batch, key=lambda t: (t.topic, t.partition))
                for r in batch[tp] if r.offset >= loop.positions.get(tp, 0)]
        ticks = memory.decider.ticks(loop.ticks_since, now)
        head = memory.finished_snapshot()  # a snapshot encoded meanwhile: its head, once done
        if not recs and not ticks and not head:
            return
        await producer.begin_transaction()
        outs: list[Out] = head
        logged: list[Any] = []
        for tick in ticks:
            res = memory.decider.fold(tick)
            if not res.duplicate:
                logged.append(tick)
                outs += await memory.outputs(res)
        for n, rec in enumerate(recs):
            if n % 50 == 49:
                await asyncio.sleep(0)  # a long batch lets heartbeats through
            outs += await _admit(rec, logged)
        # The tables' writes (made while admitting, through Faust's own producer) must be on
        # the broker before the commit that makes the input offsets count; flushed meanwhile,
        # not before the offsets are added: a flush is a round trip plus Faust's linger
        # (~4 ms, up to 26 ms measured), which every order used to wait for on top of the
        # transaction's own round trips.
        flushing = asyncio.ensure_future(tables.flush(loop.tandem.app))
        try:
            futures = [await producer.send(loop.log_topic, r.SerializeToString(), partition=0)
                       for r in logged]
            if memory.snapshot_due() and futures:
                last = await futures[-1]  # the log offset the snapshot covers
                outs += memory.snapshot_outputs(last.offset + 1)
            for o in outs:
                await producer.send(o.topic, o.value, key=o.key, partition=o.partition)
            fail.hit(T.DECIDER_BASE, "after_send")
            offsets = {}
            for rec in recs:
                offsets[TopicPartition(rec.topic, rec.partition)] = rec.offset + 1
            if offsets:
                await producer.send_offsets_to_transaction(offsets, loop.inputs_group)
            await flushing  # the tables' writes before the commit
        finally:
            if not flushing.done():  # the batch failed: it is aborted, its writes re-derived
                flushing.cancel()
        fail.hit(T.DECIDER_BASE, "before_commit")
        await producer.commit_transaction()
        loop.positions.update(offsets)
        loop.ticks_since = now
        st = loop.stats
        st.batches += 1
        st.records += len(recs)
        st.logged += len(logged)
        st.commit_s_max = max(st.commit_s_max, time.monotonic() - started)

    async def _admit(rec: Record, logged: list[Any]) -> list[Out]:
        """One input record: folded, or refused (one dead letter); its table writes and the
        NOC mirror of link state."""
        memory = loop.memory
        kind = loop.input_topics[rec.topic]
        adm = memory.decider.admit(kind, rec.value, rec.timestamp)
        outs: list[Out] = []
        if kind == "link_state" and adm.event is not None:
            outs.append(Out(loop.mirror, to_json(adm.event), key=rec.key))  # what was published
        if adm.outputs.invalid is not None:
            loop.stats.refused += 1
            bad = adm.outputs.invalid
            return [*outs, dead_letter(loop.dead, rec, bad.reason, bad.detail, CONSUMER)]
        ev = adm.event
        if kind == "inventory":
            if ev.WhichOneof("change") == "observed":
                return outs + inv.observe(memory.tables["inventory"], ev, loop.alarms)
            if adm.record is not None:
                if ev.WhichOneof("change") == "site":  # its command topics exist before any command
                    await ensure_site_topics(loop.tandem, ev.site.site_id)
                inv.apply(memory.tables["inventory"], ev)
        elif kind == "link_state" and adm.record is not None:
            tables.put(memory.tables["link_state"], ev.link_id, ev.SerializeToString())
        if adm.record is not None:
            logged.append(adm.record)
        return outs + await memory.outputs(adm.outputs)

    async def _abort(exc: BaseException) -> None:
        loop.stats.aborts += 1
        loop.failures += 1
        loop.last_error = repr(exc)[:300]
        delay = min(5.0, 0.2 * 2 ** min(loop.failures - 1, 5))
        loop.retry_at = time.monotonic() + delay
        log.error("decider: batch aborted (%r); inputs re-read from their committed offsets in "
                  "%.1f s", exc, delay, exc_info=loop.failures == 1)
        loop.memory.reset()
        producer = loop.producer
        if producer is not None:
            try:
                await producer.abort_transaction()
            except Exception as abort_exc:  # unusable: the next take-over fences it
                log.warning("decider: abort failed (%r): taking over again", abort_exc)
                await _release()
                return
        if loop.inputs is not None:
            for tp, off in loop.positions.items():
                loop.inputs.seek(tp, off)

    class DeciderService(Service):  # type: ignore[misc]
        """Holds the decider when this worker is assigned the lease (see the module)."""

        async def on_start(self) -> None:
            loop.lease = AIOKafkaConsumer(
                bootstrap_servers=loop.broker, group_id=f"{loop.app_id}.decider",
                enable_auto_commit=False, auto_offset_reset="latest",
                isolation_level="read_committed")
            await loop.lease.start()
            loop.lease.subscribe([loop.log_topic], listener=Listener())

        async def on_stop(self) -> None:
            async with lock:
                loop.wanted = False
                await _release()
            if loop.lease is not None:
                await loop.lease.stop()  # leaves the group: another worker takes over at once

        @Service.task
        async def _run(self) -> None:
            lease = loop.lease
            assert lease is not None
            while not self.should_stop:
                try:
                    # Polling keeps the lease (the partition itself is paused while held).
                    await lease.getmany(timeout_ms=0 if loop.owner else 200)
                    if not loop.owner:
                        if loop.wanted and time.monotonic() >= loop.retry_at:
                            async with lock:
                                if loop.wanted and not loop.owner:
                                    await _take_over()
                        continue
                    if loop.memory.decider is None:  # after an abort: rebuilt first
                        if time.monotonic() < loop.retry_at:
                            await asyncio.sleep(0.05)
                            continue
                        async with lock:
                            await _rebuild()
                    assert loop.inputs is not None
                    batch = await loop.inputs.getmany(timeout_ms=loop.poll_ms,
                                                      max_records=loop.max_records)
                    async with lock:
                        if loop.owner and loop.memory.decider is not None:
                            await _transact(batch, time.time())
                            if loop.failures:
                                log.info("decider: deciding again after %d failed attempt(s)",
                                         loop.failures)
                                loop.failures, loop.last_error = 0, ""
                except ProducerFenced:
                    log.warning("decider: another worker holds the decider now (fenced)")
                    async with lock:
                        await _release()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    async with lock:
                        await _abort(exc)

    async def _rebuild() -> None:
        assert loop.inputs is not None
        ends = await loop.inputs.end_offsets([journal])
        await loop.memory.recover(ends[journal])

    return DeciderService
