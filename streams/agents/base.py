"""The one loop body every input handler runs: decode, check, handle — or dead-letter and go on.

Handlers run inside `tandem.streams.txloop` transactions: what they return (forwards, table
changelog, mirrors, dead letters) is committed together with the input offsets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from aiokafka import TopicPartition
from google.protobuf.message import Message

from tandem.streams.compat import faust_table_writes as tables
from tandem.streams import topics as T
from tandem.streams.deadletter import dead_letter
from tandem.streams.txloop import Out, Record
from tandem.validation import PROCESSING_ERROR, InvalidEvent, decode

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Message)


class InputHandler(Generic[M]):
    """For each record: strict decode, `check` (raises InvalidEvent), then `on_record`, which
    returns the record's outputs. A record that fails a step — or on which `on_record` raises
    (a bug) — yields one dead letter with its origin and the reason instead; later records are
    handled as if it never came."""

    def __init__(self, tandem: Any, schema: type[M], check: Callable[[M], None],
                 on_record: Callable[[Record, M], Awaitable[list[Out]]], consumer: str,
                 writes_tables: bool = False,
                 decoded: Callable[[Record, M], list[Out]] | None = None) -> None:
        self.tandem = tandem
        self.schema = schema
        self.check = check
        self.on_record = on_record
        self.consumer = consumer
        self.writes_tables = writes_tables
        # Outputs for every record that decodes, valid or not (the NOC's mirror of a topic).
        self.decoded = decoded
        self.dead = T.SPECS[T.DEAD_LETTERS_BASE].name(tandem.settings.topic_prefix)

    async def assigned(self, tp: TopicPartition, committed: int) -> None:
        return None

    def revoked(self, tp: TopicPartition) -> None:
        return None

    def aborted(self, tp: TopicPartition) -> None:
        # Table writes of the aborted batch are re-derived, identically, when it is re-read.
        return None

    async def prepare(self, tp: TopicPartition, first_offset: int) -> None:
        return None

    async def before_commit(self) -> None:
        if self.writes_tables:
            await tables.flush(self.tandem.app)

    async def handle(self, records: list[Record]) -> list[Out]:
        outs: list[Out] = []
        for n, rec in enumerate(records):
            if n % 200 == 199:
                await asyncio.sleep(0)  # a long batch lets heartbeats and the web page through
            mine: list[Out] = []
            try:
                msg = decode(self.schema, rec.value)
                if self.decoded is not None:
                    mine.extend(self.decoded(rec, msg))
                self.check(msg)
                mine.extend(await self.on_record(rec, msg))
                outs.extend(mine)
            except InvalidEvent as bad:
                outs.extend(mine)  # what it says as decoded still holds (the mirror)
                outs.append(dead_letter(self.dead, rec, bad.reason, bad.detail, self.consumer))
            except Exception as exc:  # never lose a record to a bug: keep it, say why
                log.exception("%s failed on %s[%d]@%d", self.consumer, rec.topic, rec.partition,
                              rec.offset)
                outs.append(dead_letter(self.dead, rec, PROCESSING_ERROR, repr(exc), self.consumer))
        return outs


async def ensure_site_topics(tandem: Any, site_id: str) -> None:
    """Create a site's SDN and compute command topics once per process (idempotent)."""
    if site_id in tandem.sites_with_topics:
        return
    from tandem.services.kafka_admin import ensure_topics

    # Not waiting until they are visible (that would hold the inventory fold up): this worker
    # only produces to them, and a producer waits for a topic's metadata itself; the units
    # consuming them ensure (and wait for) them on their own start.
    await ensure_topics(tandem.settings.broker,
                        T.site_topics([site_id], tandem.settings.topic_prefix), visible_timeout=None)
    tandem.sites_with_topics.add(site_id)


def global_table(app: Any, name: str, partitions: int = 1, **options: Any) -> Any:
    """A GlobalTable of str → protobuf bytes that every worker keeps whole and current,
    written through `tandem.streams.tables` only.

    `recovery_buffer_size=1`: a global table's changelog must be applied record by record on
    every worker, including the writes of other workers; Faust's default buffer (1,000) leaves
    copies behind after a rebalance (faust-streaming issue 283, robinhood/faust PR 583)."""
    return app.GlobalTable(name, default=None, key_type=str, value_type=bytes,
                           partitions=partitions, recovery_buffer_size=1, **options)
