"""Dead-lettering: the one way a stream processor gives up on an input record.

The record is kept (key and payload) with its origin (topic, partition, offset), the reason
and the consumer; a counter is raised and a warning logged; the processor goes on. The dead
letter is an output of the transaction that consumes the record (`tandem.streams.txloop`), so
it is published exactly once however often the record is re-read; and each input topic is read
by one handler only (the link-state handler also writes the NOC's JSON mirror of it), so a bad
record yields one dead letter, not one per reader.

Dead-lettering cannot fail for size: key and payload are kept whole up to `KEEP_WHOLE`
bytes; beyond that only an excerpt of `EXCERPT` bytes is kept, with the size and a SHA-256 of
the whole (a 1 MB record used to make the dead letter itself too large to produce, and the
worker died on it again and again). The detail is cut to `MAX_DETAIL` characters.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter

from tandem.events import derived_id, new_meta
from tandem.streams.txloop import Out, Record
from tandem.v1 import alarms_pb2

log = logging.getLogger(__name__)

KEEP_WHOLE = 64 * 1024
EXCERPT = 4 * 1024
MAX_DETAIL = 2_000

# Dead letters per (consumer, reason), read by the metrics page and by tests.
COUNTS: Counter[tuple[str, str]] = Counter()

# A flood of bad input must not become a flood of log lines (logging each of 78,000 dead
# letters cost the worker 15 % of its time in `tandem bench fuzz`): per (consumer, reason), at
# most LOG_BURST warnings per LOG_WINDOW_S seconds; the next line logged says how many were
# left out meanwhile. The counters above count them all.
LOG_BURST = 10
LOG_WINDOW_S = 10.0
_window: dict[tuple[str, str], tuple[float, int, int]] = {}  # key -> (start, logged, left out)


def _should_log(key: tuple[str, str], now: float) -> tuple[bool, int]:
    """(log this one?, how many were left out since the last one logged)."""
    start, logged, left = _window.get(key, (now, 0, 0))
    if now - start >= LOG_WINDOW_S:
        start, logged = now, 0
    if logged < LOG_BURST:
        _window[key] = (start, logged + 1, 0)
        return True, left
    _window[key] = (start, logged, left + 1)
    return False, 0


def _bounded(data: bytes | None) -> tuple[bytes, bool]:
    data = data or b""
    if len(data) <= KEEP_WHOLE:
        return data, False
    return data[:EXCERPT], True


def build_dead_letter(
    *, topic: str, partition: int, offset: int, key: bytes | None, payload: bytes | None,
    reason: str, detail: str, consumer: str,
) -> alarms_pb2.DeadLetter:
    """A dead letter for one record; its id is derived from the record's origin, so that a
    downstream reader can tell a repeat from a second bad record."""
    kept_payload, payload_cut = _bounded(payload)
    kept_key, key_cut = _bounded(key)
    if len(detail) > MAX_DETAIL:
        detail = detail[:MAX_DETAIL] + f"... ({len(detail)} characters)"
    return alarms_pb2.DeadLetter(
        meta=new_meta(source=f"streams/{consumer}",
                      event_id=derived_id("dead-letter", topic, str(partition), str(offset))),
        origin_topic=topic,
        origin_partition=partition,
        origin_offset=offset,
        origin_key=kept_key,
        payload=kept_payload,
        reason=reason,
        detail=detail,
        consumer=consumer,
        payload_size=len(payload or b""),
        payload_sha256=hashlib.sha256(payload or b"").hexdigest(),
        payload_truncated=payload_cut,
        key_size=len(key or b""),
        key_truncated=key_cut,
    )


def dead_letter(dead_letter_topic: str, rec: Record, reason: str, detail: str,
                consumer: str) -> Out:
    """The dead letter of `rec` as an output of the transaction consuming it."""
    dl = build_dead_letter(topic=rec.topic, partition=rec.partition, offset=rec.offset,
                           key=rec.key, payload=rec.value, reason=reason, detail=detail,
                           consumer=consumer)
    COUNTS[(consumer, reason)] += 1
    say, left_out = _should_log((consumer, reason), time.monotonic())
    if say:
        log.warning("dead letter from %s[%d]@%d (%s): %s: %s%s", rec.topic, rec.partition,
                    rec.offset, consumer, reason, dl.detail,
                    f" ({left_out} more like it not logged)" if left_out else "")
    return Out(dead_letter_topic, dl.SerializeToString(), key=rec.topic.encode())
