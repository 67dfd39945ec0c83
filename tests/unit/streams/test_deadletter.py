"""Dead letters can always be produced: bounded, with size and digest of what they cut."""

from __future__ import annotations

import hashlib

from tandem.streams.deadletter import EXCERPT, KEEP_WHOLE, MAX_DETAIL, dead_letter
from tandem.streams.txloop import Record
from tandem.v1 import alarms_pb2


def test_a_one_megabyte_record_yields_a_small_dead_letter() -> None:
    payload = b"\x0a" + bytes(range(256)) * 4096  # ~1 MB
    key = b"k" * (KEEP_WHOLE + 1)
    out = dead_letter("dl", Record("in", 2, 77, key, payload, 0.0), "too_large", "x" * 10_000, "c")
    assert out.topic == "dl" and out.key == b"in"
    assert out.value is not None and len(out.value) < 3 * EXCERPT + MAX_DETAIL + 1000
    dl = alarms_pb2.DeadLetter.FromString(out.value)
    assert dl.payload == payload[:EXCERPT] and dl.payload_truncated
    assert dl.payload_size == len(payload)
    assert dl.payload_sha256 == hashlib.sha256(payload).hexdigest()
    assert dl.key_truncated and dl.key_size == len(key) and dl.origin_key == key[:EXCERPT]
    assert (dl.origin_topic, dl.origin_partition, dl.origin_offset) == ("in", 2, 77)
    assert len(dl.detail) < MAX_DETAIL + 50


def test_a_small_record_is_kept_whole_and_its_id_names_its_origin() -> None:
    rec = Record("in", 0, 5, b"key", b"\xff junk", 0.0)
    a = alarms_pb2.DeadLetter.FromString(dead_letter("dl", rec, "undecodable", "d", "c").value or b"")
    b = alarms_pb2.DeadLetter.FromString(dead_letter("dl", rec, "undecodable", "d", "c").value or b"")
    assert a.payload == b"\xff junk" and not a.payload_truncated and a.origin_key == b"key"
    assert a.meta.event_id == b.meta.event_id  # a repeat is recognisable downstream
    other = dead_letter("dl", Record("in", 0, 6, b"key", b"\xff junk", 0.0), "undecodable", "d", "c")
    assert alarms_pb2.DeadLetter.FromString(other.value or b"").meta.event_id != a.meta.event_id


def test_a_flood_of_dead_letters_is_logged_in_bursts_and_counted_whole() -> None:
    from tandem.streams import deadletter as D

    key = ("flood-test", "undecodable")
    said = [D._should_log(key, 100.0 + i * 0.001) for i in range(50)]
    assert [s for s, _ in said].count(True) == D.LOG_BURST
    again, left = D._should_log(key, 100.0 + D.LOG_WINDOW_S + 1)  # the next window
    assert again and left == 50 - D.LOG_BURST
