"""Pure parts of `WatchEvents`: which topics an event kind is read from, the resume position
token, decoding a record into a `WatchEvent`, and the site and tenant filters.

Why a position is a set of offsets: the events come from several topics, each with several
partitions, and Kafka orders records only within a partition. A position is therefore the next
offset to read in every partition the stream reads (unprefixed topic name and partition →
offset), encoded as an opaque URL-safe token; each event carries the position just after it,
so a client that stored the last position it handled resumes exactly there (at-least-once
across a crash of the client between handling and storing).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tandem.v1 import api_pb2, decision_pb2, telemetry_pb2

from tandem.services.api.errors import BadRequest
from tandem.services.api.status import order_state

# Kind → the base topic it is read from (streams/topics.py names them; no Kafka import here).
TOPICS: dict[int, str] = {
    api_pb2.EVENT_KIND_DECISION: "tandem.decisions",
    api_pb2.EVENT_KIND_WORKLOAD_STATUS: "tandem.workload-status",
    api_pb2.EVENT_KIND_ALARM: "tandem.alarms",
    api_pb2.EVENT_KIND_LINK_STATE: "tandem.link-state",
    api_pb2.EVENT_KIND_UTILISATION: "tandem.telemetry",
    api_pb2.EVENT_KIND_APPROVAL: "tandem.approvals",
}
KIND_OF = {topic: kind for kind, topic in TOPICS.items()}
_MAGIC = b"p1:"

Offsets = dict[tuple[str, int], int]  # (base topic, partition) → next offset to read


def kinds_of(call: api_pb2.WatchEventsRequest) -> list[int]:
    """The kinds asked for (all when none); BadRequest naming `kinds` for an unknown value."""
    bad = [k for k in call.kinds if k not in TOPICS]
    if bad:
        raise BadRequest([("kinds", f"{bad[0]}: not an EventKind other than UNSPECIFIED")])
    return sorted(set(call.kinds)) if call.kinds else sorted(TOPICS)


def encode_position(offsets: Offsets) -> str:
    body = json.dumps({f"{t}/{p}": o for (t, p), o in sorted(offsets.items())},
                      separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(_MAGIC + body).decode().rstrip("=")


def decode_position(token: str) -> Offsets:
    """The offsets a position names; BadRequest naming `position` for a token not made here."""
    if not token:
        return {}
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        if not raw.startswith(_MAGIC):
            raise ValueError("no magic")
        items = json.loads(raw[len(_MAGIC):])
        out: Offsets = {}
        for key, off in items.items():
            topic, part = key.rsplit("/", 1)
            if topic not in KIND_OF or not isinstance(off, int) or off < 0:
                raise ValueError(key)
            out[(topic, int(part))] = off
        return out
    except (binascii.Error, ValueError, AttributeError, UnicodeDecodeError):
        raise BadRequest([("position", "not a position from a WatchEvents event")]) from None


def decode(topic: str, value: bytes | None) -> api_pb2.WatchEvent | None:
    """The event a record of base topic `topic` carries; None for a record that is not one
    (undecodable, or a telemetry sample other than a link's)."""
    kind = KIND_OF[topic]
    ev = api_pb2.WatchEvent(kind=kind)  # type: ignore[arg-type]
    try:
        if kind == api_pb2.EVENT_KIND_DECISION:
            ev.decision.ParseFromString(value or b"")
        elif kind == api_pb2.EVENT_KIND_WORKLOAD_STATUS:
            ev.status.ParseFromString(value or b"")
        elif kind == api_pb2.EVENT_KIND_ALARM:
            ev.alarm.ParseFromString(value or b"")
        elif kind == api_pb2.EVENT_KIND_LINK_STATE:
            ev.link_state.ParseFromString(value or b"")
        elif kind == api_pb2.EVENT_KIND_APPROVAL:
            ev.approval.ParseFromString(value or b"")
        else:
            sample = telemetry_pb2.TelemetrySample.FromString(value or b"")
            if sample.WhichOneof("sample") != "link":
                return None
            ev.utilisation.CopyFrom(sample.link)
    except Exception:  # a malformed record is the topic's consumers' to dead-letter
        return None
    return ev


@dataclass(frozen=True)
class Lookup:
    """What the filters need to know of the server's fold: the tenant and sites of a workload
    (from its last decision), and the two ends of a link."""

    tenant_of: Callable[[str], str]
    sites_of: Callable[[str], frozenset[str]]
    ends_of: Callable[[str], frozenset[str]]
    kind_of: Callable[[str, str], int]  # (workload id, decision id) → that decision's kind


def _placed(d: decision_pb2.Decision, lookup: Lookup) -> set[str]:
    sites = {p.site_id for p in d.placements}
    for path in d.paths:
        for lid in path.link_ids:
            sites |= lookup.ends_of(lid)
    return sites


def matches(ev: api_pb2.WatchEvent, site: str, tenant: str, lookup: Lookup) -> bool:
    """Whether `ev` passes the site and tenant filters ("" passes everything). Link state and
    utilisation belong to no tenant: they pass a tenant filter (GetTopology shows the same to
    every caller); an alarm passes it only when it names one of the tenant's workloads."""
    which = ev.WhichOneof("event")
    if which == "decision":
        d = ev.decision
        return ((not tenant or d.tenant == tenant)
                and (not site or site in _placed(d, lookup)))
    if which == "status":
        s = ev.status
        return ((not tenant or s.tenant == tenant)
                and (not site or site in lookup.sites_of(s.workload_id)))
    if which == "alarm":
        a = ev.alarm
        if tenant and (not a.workload_id or lookup.tenant_of(a.workload_id) != tenant):
            return False
        return (not site or a.site_id == site or site in lookup.ends_of(a.link_id)
                or (bool(a.workload_id) and site in lookup.sites_of(a.workload_id)))
    if which == "approval":
        a = ev.approval
        return ((not tenant or a.tenant == tenant)
                and (not site or site in _placed(a.decision, lookup)))
    if which == "link_state":
        return not site or site in lookup.ends_of(ev.link_state.link_id)
    if which == "utilisation":
        return not site or site in lookup.ends_of(ev.utilisation.link_id)
    return False


def annotate(ev: api_pb2.WatchEvent, lookup: Lookup) -> None:
    """Add what the event implies for OSS systems: a status's order state."""
    if ev.WhichOneof("event") == "status":
        s = ev.status
        ev.order_state = order_state(  # type: ignore[assignment]
            s.phase, lookup.kind_of(s.workload_id, s.decision_id))


def start_offsets(token: Offsets, parts: Iterable[tuple[str, int]]) -> dict[tuple[str, int],
                                                                            int | None]:
    """Where to start each partition: its offset in the position, else None (from now, or from
    the start with from_start: the caller decides)."""
    return {tp: token.get(tp) for tp in parts}

