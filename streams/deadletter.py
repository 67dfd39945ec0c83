"""Dead-lettering: the one way a stream processor gives up on an input record.

The record is kept whole (key and payload bytes) with its origin (topic, partition, offset)
and the reason, a counter is raised, and a warning is logged; the agent then goes on.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from tandem.events import new_meta
from tandem.v1 import alarms_pb2

log = logging.getLogger(__name__)

# Dead letters per (consumer, reason), read by the metrics page and by tests.
COUNTS: Counter[tuple[str, str]] = Counter()


def build_dead_letter(
    *, topic: str, partition: int, offset: int, key: bytes | None, payload: bytes | None,
    reason: str, detail: str, consumer: str,
) -> alarms_pb2.DeadLetter:
    return alarms_pb2.DeadLetter(
        meta=new_meta(source=f"streams/{consumer}"),
        origin_topic=topic,
        origin_partition=partition,
        origin_offset=offset,
        origin_key=key or b"",
        payload=payload or b"",
        reason=reason,
        detail=detail,
        consumer=consumer,
    )


async def dead_letter(topic: Any, event: Any, reason: str, detail: str, consumer: str) -> None:
    """Send the Faust `event`'s record to the dead-letter `topic` (a faust Topic)."""
    msg = event.message
    key = msg.key if isinstance(msg.key, bytes | type(None)) else str(msg.key).encode()
    value = msg.value if isinstance(msg.value, bytes | type(None)) else bytes(msg.value)
    dl = build_dead_letter(topic=msg.topic, partition=msg.partition, offset=msg.offset, key=key,
                           payload=value, reason=reason, detail=detail, consumer=consumer)
    COUNTS[(consumer, reason)] += 1
    log.warning("dead letter from %s[%d]@%d (%s): %s: %s", msg.topic, msg.partition, msg.offset,
                consumer, reason, detail)
    await topic.send(key=msg.topic.encode(), value=dl.SerializeToString())
