"""Reading committed records back, and asking whether a consumer group processed everything.

For recovery (the decider re-folds its log), replay, tests, benchmarks and `make demo`. Every
reader uses `isolation_level="read_committed"`: records of aborted transactions are never seen.

Has a group processed everything?
A group of Tandem's exactly-once loops commits an input offset together with the outputs it
caused (`tandem.streams.txloop`); once its committed offsets reach the end of its input
topics, every output those inputs will ever cause is on its topic. "The end" is not the end
offset: transaction markers take offsets too, so a partition whose last write was transactional
ends one past its last record. A partition counts as done when no committed record lies at or
after the group's committed offset.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from tandem.streams.compat import aiokafka_private


async def record_at_or_after(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int,
                             end: int) -> bool:
    """Whether a committed record lies in [offset, end) (`consumer` has `tp` assigned)."""
    consumer.seek(tp, offset)
    while await consumer.position(tp) < end:
        batch = await consumer.getmany(tp, timeout_ms=200)
        if any(r.offset < end for r in batch.get(tp, [])):
            return True
    return False


async def behind(broker: str, group_id: str, topics: list[str]) -> dict[str, tuple[int, int]]:
    """{"topic[partition]": (committed, end)} for every partition with records not committed."""
    group = AIOKafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False,
                             group_id=group_id, isolation_level="read_committed")
    probe = AIOKafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False,
                             isolation_level="read_committed",
                             max_partition_fetch_bytes=4 * 1024 * 1024)
    await group.start()
    await probe.start()
    try:
        tps: list[TopicPartition] = []
        for t in topics:
            parts = await partitions_of(probe, t)
            tps.extend(TopicPartition(t, p) for p in sorted(parts))
        probe.assign(tps)
        ends = await probe.end_offsets(tps)
        out: dict[str, tuple[int, int]] = {}
        for tp in tps:
            committed = await group.committed(tp) or 0
            if committed < ends[tp] and await record_at_or_after(probe, tp, committed, ends[tp]):
                out[f"{tp.topic}[{tp.partition}]"] = (committed, ends[tp])
        return out
    finally:
        await group.stop()
        await probe.stop()


async def wait_committed(broker: str, group_id: str, topics: list[str],
                         timeout: float) -> None:
    """Wait until `group_id` has committed every record of `topics` (raises TimeoutError
    naming the partitions still behind)."""
    deadline = time.monotonic() + timeout
    while True:
        late = await behind(broker, group_id, topics)
        if not late:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"group {group_id} has not committed every record in "
                               f"{timeout:.0f} s: {late}")
        await asyncio.sleep(0.2)


async def read_topic(bootstrap: str, topic: str, end: int | None = None,
                     start: int = 0) -> list[Any]:
    """Records of partition 0 of `topic` from offset `start` up to `end` (default: the current
    end)."""
    return await _read(bootstrap, topic, only_partition=0, end=end, start=start)


async def read_tail(bootstrap: str, topic: str, n: int) -> list[Any]:
    """At most the last `n` offsets' records of partition 0 of `topic` (markers included in
    the count, so possibly fewer records)."""
    return await _read(bootstrap, topic, only_partition=0, last=n)


async def read_all_partitions(bootstrap: str, topic: str) -> list[Any]:
    """Every committed record of `topic` up to its current end, partition by partition."""
    return await _read(bootstrap, topic)


async def _read(bootstrap: str, topic: str, only_partition: int | None = None,
                end: int | None = None, timeout: float = 60.0, last: int = 0,
                start: int = 0) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed", auto_offset_reset="earliest",
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        parts = [only_partition] if only_partition is not None else sorted(
            await partitions_of(consumer, topic))
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)  # read_committed: the last stable offset
        if end is not None:
            ends = {tp: min(e, end) for tp, e in ends.items()}
        for tp in tps:
            consumer.seek(tp, max(0, ends[tp] - last) if last else min(start, ends[tp]))
        out: list[Any] = []
        # Done with a partition once the consumer's position reaches the end: offsets have
        # holes (transaction markers, aborted records), so the last record is not the end.
        need = {tp: ends[tp] for tp in tps if ends[tp] > (0 if last else start)}
        deadline = time.monotonic() + timeout
        while need:
            if time.monotonic() > deadline:
                raise RuntimeError(f"reading {topic} timed out; still missing {need}")
            batch = await consumer.getmany(*need, timeout_ms=500)
            for tp, records in batch.items():
                out.extend(r for r in records if r.offset < need.get(tp, 0))
            for tp in list(need):
                if await consumer.position(tp) >= need[tp]:
                    need.pop(tp)
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
        await aiokafka_private.force_metadata_update(consumer)
        await asyncio.sleep(0.1)
