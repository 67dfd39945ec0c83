"""`WatchEvents`: one Kafka consumer per stream, reading the topics of the kinds asked for.

Why a consumer per call rather than fanning out the view's: each watcher starts from its own
position (now, the start, or a token) and goes at its own pace; a slow client then holds only
its own consumer back (gRPC flow control stops the reads), never the view nor other watchers.
The consumer is in no group and commits nothing: the position lives with the client, in the
token every event carries (`events.encode_position`). Records are read `read_committed`, so a
decision or status is seen only once the decider's or executor's transaction committed it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from tandem.streams.readback import partitions_of
from tandem.v1 import api_pb2

from tandem.services.api import events
from tandem.services.api.errors import Unavailable
from tandem.services.api.view import KAFKA_TIMEOUT_S

log = logging.getLogger(__name__)
POLL_MS = 200


async def watch(broker: str, prefix: str, call: api_pb2.WatchEventsRequest, tenant: str,
                lookup: events.Lookup, positioned: Callable[[], Awaitable[None]]
                ) -> AsyncIterator[api_pb2.WatchEvent]:
    """The events `call` asks for (filtered by its site and by `tenant`), for as long as the
    caller keeps the stream open. `positioned` is awaited once the consumer stands where the
    stream starts (the server then sends the stream's headers: a client that waited for them
    sees every event published afterwards, "from now" included)."""
    kinds = events.kinds_of(call)
    token = events.decode_position(call.position)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker, enable_auto_commit=False, group_id=None,
        isolation_level="read_committed", auto_offset_reset="earliest",
        client_id="tandem-api-watch", request_timeout_ms=int(KAFKA_TIMEOUT_S * 1000) + 2000)
    try:
        try:
            await asyncio.wait_for(consumer.start(), 10 * KAFKA_TIMEOUT_S)
            base_of: dict[str, str] = {}
            tps: list[TopicPartition] = []
            for kind in kinds:
                base = events.TOPICS[kind]
                name = prefix + base
                base_of[name] = base
                tps += [TopicPartition(name, p) for p in sorted(await partitions_of(consumer,
                                                                                    name))]
            consumer.assign(tps)
            offsets: events.Offsets = {}
            ends = await asyncio.wait_for(consumer.end_offsets(tps), KAFKA_TIMEOUT_S)
            starts = await asyncio.wait_for(consumer.beginning_offsets(tps), KAFKA_TIMEOUT_S)
            for tp in tps:
                key = (base_of[tp.topic], tp.partition)
                at = token.get(key)
                if at is None:
                    at = starts[tp] if call.from_start else ends[tp]
                at = max(at, starts[tp])  # retention may have removed older records
                consumer.seek(tp, at)
                offsets[key] = at
        except Exception as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise Unavailable(f"cannot read the event topics on {broker}: {exc!r}") from None
        for tp in tps:  # resolve the seeks now, so that "now" is before `positioned`
            await consumer.position(tp)
        await positioned()
        while True:
            batch = await consumer.getmany(timeout_ms=POLL_MS, max_records=500)
            for tp, records in batch.items():
                base = base_of[tp.topic]
                for r in records:
                    offsets[(base, tp.partition)] = r.offset + 1
                    ev = events.decode(base, r.value)
                    if ev is None or not events.matches(ev, call.site_id, tenant, lookup):
                        continue
                    events.annotate(ev, lookup)
                    ev.position = events.encode_position(offsets)
                    ev.time = r.timestamp / 1000.0
                    yield ev
    finally:
        await consumer.stop()
