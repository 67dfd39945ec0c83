"""Decoding and validation of incoming events: pure, no I/O.

Every consumer of an input topic calls `decode` and then the checks here; whatever fails is
turned into an `InvalidEvent` with a machine-readable reason (the names used on the
dead-letter topic) and a detail naming the offending field, so the agent can dead-letter it
and keep going. Nothing is silently dropped.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from tandem.events import KNOWN_SCHEMA_VERSIONS, meta_time

# Reasons, as written to DeadLetter.reason.
UNDECODABLE = "undecodable"
UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
UNKNOWN_REFERENCE = "unknown_reference"
OUT_OF_RANGE = "out_of_range"
INVALID = "invalid"
# Larger than any valid event can be (checked before decoding: parsing megabytes of garbage
# would cost the processor, and the dead letter keeps only an excerpt of it).
TOO_LARGE = "too_large"
# An event id seen before on another event (different content): ids are the idempotency keys,
# so the second event cannot be told from a repeat of the first.
EVENT_ID_REUSED = "event_id_reused"
# A request id (the client's idempotency key) repeated with a different order.
REQUEST_ID_REUSED = "request_id_reused"
# Not the record's fault: the processor failed on it (a bug); kept for re-processing.
PROCESSING_ERROR = "processing_error"

# The largest record an input topic may carry (the biggest valid request, thousands of VM
# groups and demands, stays well below it).
MAX_RECORD_BYTES = 256 * 1024

# Clock skew tolerated on producer timestamps before an event counts as "from the future".
MAX_FUTURE_SKEW_S = 300.0

M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class InvalidEvent(Exception):
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


def decode(schema: type[M], payload: bytes | None) -> M:
    """Parse protobuf bytes strictly: empty, truncated or garbage payloads are rejected."""
    if not payload:
        raise InvalidEvent(UNDECODABLE, f"empty payload where a {schema.DESCRIPTOR.name} was expected")
    if len(payload) > MAX_RECORD_BYTES:
        raise InvalidEvent(TOO_LARGE, f"{len(payload)} bytes where a {schema.DESCRIPTOR.name} "
                                      f"has at most {MAX_RECORD_BYTES}")
    msg = schema()
    try:
        msg.ParseFromString(payload)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise InvalidEvent(UNDECODABLE, f"not a {schema.DESCRIPTOR.name}: {exc}") from None
    if not msg.ListFields():
        raise InvalidEvent(UNDECODABLE, f"payload decodes to an empty {schema.DESCRIPTOR.name}")
    return msg


def check_meta(msg: Message, now: float | None = None) -> None:
    """Every event needs a meta with a known schema version, an id and a sane timestamp."""
    if not msg.HasField("meta"):
        raise InvalidEvent(INVALID, "meta: missing")
    meta = msg.meta  # type: ignore[attr-defined]
    if meta.schema_version not in KNOWN_SCHEMA_VERSIONS:
        raise InvalidEvent(
            UNKNOWN_SCHEMA_VERSION,
            f"meta.schema_version = {meta.schema_version} (known: "
            f"{', '.join(map(str, sorted(KNOWN_SCHEMA_VERSIONS)))})",
        )
    if not meta.event_id:
        raise InvalidEvent(INVALID, "meta.event_id: empty")
    t = meta_time(meta)
    limit = (time.time() if now is None else now) + MAX_FUTURE_SKEW_S
    if t > limit:
        raise InvalidEvent(OUT_OF_RANGE, f"meta.time = {t:.3f} lies in the future")
    if t < MIN_EVENT_TIME:
        raise InvalidEvent(OUT_OF_RANGE, f"meta.time = {t:.3f} lies before 2000 (a broken clock?)")


# Physical bounds for every number an event can carry, by field name (exact name, or a suffix
# for the families `_mbps`, `_ms`, ...), so that a new field named like its siblings is checked
# without another line of code. Why upper bounds: a value that passes as "non-negative" but is
# absurd (a capacity of 1e308 Mbit/s) overflows the engine's sums later and poisons every
# decision after it; no real WAN link, VM or latency comes near these limits.
MAX_MBPS = 1e7  # 10 Tbit/s
MAX_MS = 1e5  # 100 s of latency
MAX_VCPUS = 1e7
MAX_GIB = 1e9
MAX_COST = 1e9
MAX_SECONDS = 1e9
MAX_VMS_PER_GROUP = 100_000
MAX_REPEATED = 10_000  # groups, demands, jurisdictions, windows ... in one event
MAX_STRING = 1_000  # ids, names, reasons
MIN_EVENT_TIME = 946_684_800.0  # 2000-01-01: an event time before it is a broken clock
MAX_TIMESTAMP = 4_102_444_800.0  # 2100-01-01, for timestamps announcing the future

_EXACT: dict[str, tuple[float, float]] = {
    "loss": (0.0, 1.0),
    "latitude": (-90.0, 90.0),
    "longitude": (-180.0, 180.0),
    "target_utilisation": (0.0, 1.0),
    "vcpus": (0.0, MAX_VCPUS),
    "free_vcpus": (0.0, MAX_VCPUS),
    "cost_ceiling": (0.0, MAX_COST),
    "observed": (0.0, MAX_COST),
    "threshold": (0.0, MAX_COST),
}
_SUFFIX: tuple[tuple[str, tuple[float, float]], ...] = (
    ("_mbps", (0.0, MAX_MBPS)),
    ("_kbps", (0.0, MAX_MBPS * 1000)),
    ("_ms", (0.0, MAX_MS)),
    ("_gib", (0.0, MAX_GIB)),
    ("_hour", (0.0, MAX_COST)),
    ("cost", (0.0, MAX_COST)),
    ("_s", (0.0, MAX_SECONDS)),
)
MAX_HOLD_S = 7 * 24 * 3600  # the longest an order may be held for an approval
_INT_BOUNDS: dict[str, tuple[int, int]] = {
    "count": (0, MAX_VMS_PER_GROUP),
    "hold_seconds": (0, MAX_HOLD_S),
}


def bounds_of(field: str) -> tuple[float, float] | None:
    """The physical range of a numeric field, or None when only finiteness is required."""
    exact = _EXACT.get(field)
    if exact is not None:
        return exact
    for suffix, rng in _SUFFIX:
        if field.endswith(suffix):
            return rng
    return None


def check_ranges(msg: Message, path: str = "") -> None:
    """Reject NaN/inf anywhere, numbers outside their physical bounds, enum values the schema
    does not define, absurdly long strings and lists, and timestamps outside 2000..2100."""
    for fd, value in msg.ListFields():
        name = f"{path}{fd.name}"
        if fd.is_repeated and len(value) > MAX_REPEATED:
            raise InvalidEvent(OUT_OF_RANGE, f"{name}: {len(value)} entries (at most {MAX_REPEATED})")
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
                continue
            items = value if fd.is_repeated else [value]
            for i, item in enumerate(items):
                where = f"{name}[{i}]" if fd.is_repeated else name
                if item.DESCRIPTOR.full_name == "google.protobuf.Timestamp":
                    _check_timestamp(where, item)
                else:
                    check_ranges(item, f"{where}.")
            continue
        values = value if fd.is_repeated else [value]
        if fd.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            for v in values:
                _check_number(name, fd.name, float(v))
        elif fd.type == FieldDescriptor.TYPE_ENUM and fd.enum_type is not None:
            enum = fd.enum_type
            for v in values:
                if enum.values_by_number.get(v) is None:
                    raise InvalidEvent(OUT_OF_RANGE, f"{name} = {v}: not a value of {enum.name}")
        elif fd.type == FieldDescriptor.TYPE_STRING:
            for v in values:
                if len(v) > MAX_STRING:
                    raise InvalidEvent(OUT_OF_RANGE, f"{name}: {len(v)} characters "
                                                     f"(at most {MAX_STRING})")
        elif fd.name in _INT_BOUNDS:
            lo, hi = _INT_BOUNDS[fd.name]
            for v in values:
                if not lo <= v <= hi:
                    raise InvalidEvent(OUT_OF_RANGE, f"{name} = {v} (must be within {lo}..{hi})")


def _check_number(path: str, field: str, v: float) -> None:
    if math.isnan(v) or math.isinf(v):
        raise InvalidEvent(OUT_OF_RANGE, f"{path} = {v} (must be a finite number)")
    rng = bounds_of(field)
    if rng is not None and not rng[0] <= v <= rng[1]:
        raise InvalidEvent(OUT_OF_RANGE, f"{path} = {v:g} (must be within {rng[0]:g}..{rng[1]:g})")


def _check_timestamp(path: str, ts: Message) -> None:
    t = ts.seconds + ts.nanos / 1e9  # type: ignore[attr-defined]
    if not 0.0 <= t <= MAX_TIMESTAMP:
        raise InvalidEvent(OUT_OF_RANGE, f"{path} = {t:.3f} (must lie between 1970 and 2100)")


def require(condition: bool, reason: str, detail: str) -> None:
    if not condition:
        raise InvalidEvent(reason, detail)
