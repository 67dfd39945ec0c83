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
# Not the record's fault: the processor failed on it (a bug); kept for re-processing.
PROCESSING_ERROR = "processing_error"

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


# Field-name rules for numeric ranges, applied to every message type alike so that a new
# field named like its siblings is checked without another line of code.
_PROBABILITY = {"loss"}
_LATITUDE = {"latitude"}
_LONGITUDE = {"longitude"}
_NON_NEGATIVE_SUFFIXES = ("_mbps", "_ms", "_kbps", "_gib", "vcpus", "_hour", "cost", "_s",
                          "cost_ceiling", "observed", "threshold")


def check_ranges(msg: Message, path: str = "") -> None:
    """Reject NaN/inf anywhere and out-of-range values by field-name convention."""
    for fd, value in msg.ListFields():
        name = f"{path}{fd.name}"
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            if fd.is_repeated:
                if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
                    continue
                for i, item in enumerate(value):
                    check_ranges(item, f"{name}[{i}].")
            else:
                check_ranges(value, f"{name}.")
            continue
        if fd.type not in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            continue
        values = value if fd.is_repeated else [value]
        for v in values:
            _check_number(name, fd.name, float(v))


def _check_number(path: str, field: str, v: float) -> None:
    if math.isnan(v) or math.isinf(v):
        raise InvalidEvent(OUT_OF_RANGE, f"{path} = {v} (must be a finite number)")
    if field in _PROBABILITY and not 0.0 <= v <= 1.0:
        raise InvalidEvent(OUT_OF_RANGE, f"{path} = {v} (must be within 0..1)")
    if field in _LATITUDE and not -90.0 <= v <= 90.0:
        raise InvalidEvent(OUT_OF_RANGE, f"{path} = {v} (must be within -90..90)")
    if field in _LONGITUDE and not -180.0 <= v <= 180.0:
        raise InvalidEvent(OUT_OF_RANGE, f"{path} = {v} (must be within -180..180)")
    if field.endswith(_NON_NEGATIVE_SUFFIXES) and v < 0:
        raise InvalidEvent(OUT_OF_RANGE, f"{path} = {v} (must be >= 0)")


def require(condition: bool, reason: str, detail: str) -> None:
    if not condition:
        raise InvalidEvent(reason, detail)
