"""The one loop every input agent runs: decode, check, handle — or dead-letter and go on."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from google.protobuf.message import Message

from tandem.events import derived_id, new_meta
from tandem.streams import topics as T
from tandem.streams.deadletter import dead_letter
from tandem.v1 import decider_pb2
from tandem.validation import PROCESSING_ERROR, InvalidEvent, decode

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Message)


async def run_input_agent(
    tandem: Any,
    stream: Any,
    schema: type[M],
    check: Callable[[M], None],
    handle: Callable[[Any, M], Awaitable[None]],
    consumer: str,
) -> None:
    """For each record: strict decode, `check` (raises InvalidEvent), then `handle`.

    A record that fails either step — or on which `handle` raises (a bug) — goes to the
    dead-letter topic whole, with its origin and the reason; the loop goes on.
    """
    dead = tandem.topic(T.DEAD_LETTERS_BASE)
    async for event in stream.events():
        try:
            msg = decode(schema, event.value)
            check(msg)
            await handle(event, msg)
        except InvalidEvent as bad:
            await dead_letter(dead, event, bad.reason, bad.detail, consumer)
        except Exception as exc:  # never lose a record to a bug: keep it, say why
            log.exception("%s failed on a record", consumer)
            await dead_letter(dead, event, PROCESSING_ERROR, repr(exc), consumer)


def decider_input(source: str, original: Any, **which: Message) -> decider_pb2.DeciderInput:
    """Wrap a validated event for the decider log, with an id derived from the original's.

    A forward repeated after a crash carries the same id, so the decider folds it once.
    """
    meta = new_meta(source, correlation_id=original.meta.correlation_id or original.meta.event_id,
                    event_id=derived_id("decider-input", original.meta.event_id))
    return decider_pb2.DeciderInput(meta=meta, **which)


async def forward(tandem: Any, inp: decider_pb2.DeciderInput) -> None:
    await tandem.topic(T.DECIDER_BASE).send(key=b"", value=inp.SerializeToString())


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
    """A GlobalTable of str → protobuf bytes that every worker keeps whole and current.

    `recovery_buffer_size=1`: a global table's changelog must be applied record by record on
    every worker, including the writes of other workers; Faust's default buffer (1,000) leaves
    copies behind after a rebalance (faust-streaming issue 283, robinhood/faust PR 583)."""
    return app.GlobalTable(name, default=None, key_type=str, value_type=bytes,
                           partitions=partitions, recovery_buffer_size=1, **options)
