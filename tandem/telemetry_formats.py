"""Accepted telemetry encodings, turned into plain readings: pure, no I/O.

Why several encodings: exporters are generic tools (kcat, Telegraf, a shell script), and
asking them to speak binary protobuf would exclude most of them. A record on the telemetry
topic may be

1. a binary `tandem.v1.TelemetrySample` (what Tandem's own exporters and SDN units send);
2. the protobuf JSON mapping of `TelemetrySample` (`{"meta": {...}, "link": {...}}`);
3. a flat JSON object: `{"link_id", "from_site", "utilisation_mbps", "latency_ms", "loss",
   "time"}` or `{"site_id", "free_vcpus", "free_memory_gib", "free_storage_gib", "time"}`;
4. Telegraf's JSON serializer output `{"name", "tags", "fields", "timestamp"}` or a batch
   `{"metrics": [...]}`;

and a JSON array of shapes 2-4. The exact mapping is in docs/TELEMETRY.md. Binary protobuf
never starts with `{` or `[` (field 15 / group wire types Tandem does not use), so the first
byte tells the encodings apart (blanks first: see `parse`). Whatever is wrong raises
`InvalidEvent` with the dead-letter reason and the offending field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from google.protobuf import json_format

from tandem.events import KNOWN_SCHEMA_VERSIONS
from tandem.v1 import telemetry_pb2
from tandem.validation import (INVALID, MAX_FUTURE_SKEW_S, MAX_RECORD_BYTES, MIN_EVENT_TIME,
                               OUT_OF_RANGE, TOO_LARGE, UNDECODABLE, bounds_of,
                               UNKNOWN_SCHEMA_VERSION, InvalidEvent, decode)


@dataclass(slots=True)
class LinkReading:
    link_id: str
    from_site: str
    t: float
    utilisation_mbps: float | None
    latency_ms: float | None
    loss: float | None


@dataclass(slots=True)
class SiteReading:
    site_id: str
    t: float
    free_vcpus: float
    free_memory_gib: float
    free_storage_gib: float


@dataclass(slots=True)
class PortReading:
    datapath_id: int
    port_no: int
    t: float
    tx_bytes: int
    tx_packets: int
    tx_dropped: int
    duration_s: float


Reading = LinkReading | SiteReading | PortReading

_FLAT_LINK = {"link_id", "from_site", "utilisation_mbps", "latency_ms", "loss", "time"}
_FLAT_SITE = {"site_id", "free_vcpus", "free_memory_gib", "free_storage_gib", "time"}
_PB_KEYS = {"meta", "link", "site", "port"}
# Telegraf field name -> (our metric, scale). Unlisted fields are ignored (plugins such as
# `ping` emit many fields); at least one mapped field must be present.
TELEGRAF_FIELDS: dict[str, tuple[str, float]] = {
    "utilisation_mbps": ("utilisation_mbps", 1.0),
    "utilization_mbps": ("utilisation_mbps", 1.0),
    "latency_ms": ("latency_ms", 1.0),
    "average_response_ms": ("latency_ms", 1.0),  # inputs.ping
    "loss": ("loss", 1.0),
    "percent_packet_loss": ("loss", 0.01),  # inputs.ping
    "free_vcpus": ("free_vcpus", 1.0),
    "free_memory_gib": ("free_memory_gib", 1.0),
    "free_storage_gib": ("free_storage_gib", 1.0),
}
TELEGRAF_LINK_TAGS = ("link_id", "link")
TELEGRAF_FROM_TAGS = ("from_site", "from")
TELEGRAF_SITE_TAGS = ("site_id", "site")


def parse(payload: bytes | None, record_time: float, now: float) -> list[Reading]:
    """Readings carried by one record. `record_time` (the Kafka timestamp) stands in for a
    missing sample time; `now` bounds timestamps from the future."""
    if not payload:
        raise InvalidEvent(UNDECODABLE, "empty payload where a TelemetrySample was expected")
    if len(payload) > MAX_RECORD_BYTES:
        raise InvalidEvent(TOO_LARGE, f"{len(payload)} bytes where a telemetry record has at "
                                      f"most {MAX_RECORD_BYTES}")
    first = payload[:1]
    if first in (b"{", b"["):
        return parse_json(payload, record_time, now)
    if first in b" \t\r\n" and payload.lstrip()[:1] in (b"{", b"["):
        # JSON after blanks, or a protobuf whose first tag is 0x0a ("\n", field 1) and
        # whose length byte happens to be "{" or "[": protobuf first, JSON if it fails.
        try:
            msg = decode(telemetry_pb2.TelemetrySample, payload)
        except InvalidEvent:
            return parse_json(payload, record_time, now)
        return [from_proto(msg, now)]
    return [from_proto(decode(telemetry_pb2.TelemetrySample, payload), now)]


def from_proto(msg: telemetry_pb2.TelemetrySample, now: float,
               record_time: float | None = None) -> Reading:
    """Checks a decoded sample (meta, ranges) and returns its reading."""
    if msg.HasField("meta"):
        meta = msg.meta
        if meta.schema_version not in KNOWN_SCHEMA_VERSIONS:
            raise InvalidEvent(UNKNOWN_SCHEMA_VERSION,
                               f"meta.schema_version = {meta.schema_version} (known: "
                               f"{', '.join(map(str, sorted(KNOWN_SCHEMA_VERSIONS)))})")
        if not meta.event_id:
            raise InvalidEvent(INVALID, "meta.event_id: empty")
        t = meta.time.seconds + meta.time.nanos * 1e-9
    elif record_time is not None:  # JSON mapping without meta: the record's timestamp
        t = record_time
    else:
        raise InvalidEvent(INVALID, "meta: missing")
    _check_time("meta.time", t, now)
    which = msg.WhichOneof("sample")
    if which == "link":
        ln = msg.link
        if not ln.link_id:
            raise InvalidEvent(INVALID, "link.link_id: empty")
        if not ln.from_site:
            raise InvalidEvent(INVALID, "link.from_site: empty")
        return LinkReading(ln.link_id, ln.from_site, t,
                           _nonneg("link.utilisation_mbps", ln.utilisation_mbps),
                           _nonneg("link.latency_ms", ln.latency_ms),
                           _ratio("link.loss", ln.loss))
    if which == "site":
        s = msg.site
        if not s.site_id:
            raise InvalidEvent(INVALID, "site.site_id: empty")
        return SiteReading(s.site_id, t, _nonneg("site.free_vcpus", s.free_vcpus),
                           _nonneg("site.free_memory_gib", s.free_memory_gib),
                           _nonneg("site.free_storage_gib", s.free_storage_gib))
    if which == "port":
        p = msg.port
        if not p.datapath_id:
            raise InvalidEvent(INVALID, "port.datapath_id: 0")
        return PortReading(p.datapath_id, p.port_no, t, p.tx_bytes, p.tx_packets,
                           p.tx_dropped, _nonneg("port.duration_s", p.duration_s))
    raise InvalidEvent(INVALID, "sample: none of link, site, port is set")


def parse_json(payload: bytes, record_time: float, now: float) -> list[Reading]:
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidEvent(UNDECODABLE, f"not JSON: {exc}") from None
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise InvalidEvent(INVALID, "JSON array is empty")
    out: list[Reading] = []
    for i, item in enumerate(items):
        where = f"[{i}]" if isinstance(doc, list) else ""
        out.extend(_one_json(item, where, record_time, now))
    return out


def _one_json(d: Any, where: str, record_time: float, now: float) -> list[Reading]:
    if not isinstance(d, dict):
        raise InvalidEvent(INVALID, f"{where or 'record'}: expected a JSON object")
    keys = set(d)
    if keys & _PB_KEYS:
        msg = telemetry_pb2.TelemetrySample()
        try:
            json_format.ParseDict(d, msg)
        except (json_format.ParseError, TypeError, ValueError) as exc:
            raise InvalidEvent(INVALID, f"{where}protobuf JSON mapping: {exc}") from None
        return [from_proto(msg, now, record_time)]
    if "metrics" in keys and isinstance(d["metrics"], list):
        out: list[Reading] = []
        for i, m in enumerate(d["metrics"]):
            out.extend(_one_json(m, f"{where}metrics[{i}].", record_time, now))
        return out
    if "fields" in keys and "name" in keys:
        return [_telegraf(d, where, record_time, now)]
    if "link_id" in keys:
        return [_flat_link(d, where, record_time, now)]
    if "site_id" in keys:
        return [_flat_site(d, where, record_time, now)]
    raise InvalidEvent(INVALID, f"{where or 'record'}: unrecognised JSON shape (keys: "
                                f"{', '.join(sorted(map(str, keys)))}); see docs/TELEMETRY.md")


def _flat_link(d: dict[str, Any], where: str, record_time: float, now: float) -> LinkReading:
    _no_unknown(d, _FLAT_LINK, where)
    link_id, from_site = _str(d, "link_id", where), _str(d, "from_site", where)
    t = _time(d.get("time"), f"{where}time", record_time, now)
    util = _opt_num(d, "utilisation_mbps", where)
    lat = _opt_num(d, "latency_ms", where)
    loss = _opt_num(d, "loss", where)
    if util is None and lat is None and loss is None:
        raise InvalidEvent(INVALID, f"{where}: none of utilisation_mbps, latency_ms, loss given")
    return LinkReading(link_id, from_site, t,
                       None if util is None else _nonneg(f"{where}utilisation_mbps", util),
                       None if lat is None else _nonneg(f"{where}latency_ms", lat),
                       None if loss is None else _ratio(f"{where}loss", loss))


def _flat_site(d: dict[str, Any], where: str, record_time: float, now: float) -> SiteReading:
    _no_unknown(d, _FLAT_SITE, where)
    return _site(_str(d, "site_id", where), d, where,
                 _time(d.get("time"), f"{where}time", record_time, now))


def _site(site_id: str, d: dict[str, Any], where: str, t: float) -> SiteReading:
    vals = [_opt_num(d, k, where) for k in ("free_vcpus", "free_memory_gib", "free_storage_gib")]
    if vals[0] is None:
        raise InvalidEvent(INVALID, f"{where}free_vcpus: missing")
    names = ("free_vcpus", "free_memory_gib", "free_storage_gib")
    v = [_nonneg(f"{where}{n}", x or 0.0) for n, x in zip(names, vals, strict=True)]
    return SiteReading(site_id, t, v[0], v[1], v[2])


def _telegraf(d: dict[str, Any], where: str, record_time: float, now: float) -> Reading:
    tags, fields = d.get("tags") or {}, d.get("fields")
    if not isinstance(tags, dict):
        raise InvalidEvent(INVALID, f"{where}tags: expected an object")
    if not isinstance(fields, dict):
        raise InvalidEvent(INVALID, f"{where}fields: expected an object")
    mapped: dict[str, float] = {}
    for name, value in fields.items():
        if name in TELEGRAF_FIELDS:
            metric, scale = TELEGRAF_FIELDS[name]
            mapped[metric] = _num(value, f"{where}fields.{name}") * scale
    if not mapped:
        raise InvalidEvent(INVALID, f"{where}fields: none of {', '.join(sorted(TELEGRAF_FIELDS))}")
    t = _time(d.get("timestamp"), f"{where}timestamp", record_time, now)
    link = _tag(tags, TELEGRAF_LINK_TAGS)
    if link:
        frm = _tag(tags, TELEGRAF_FROM_TAGS)
        if not frm:
            raise InvalidEvent(INVALID, f"{where}tags.from_site: missing (link {link!r})")
        util, lat, loss = (mapped.get(k) for k in ("utilisation_mbps", "latency_ms", "loss"))
        if util is None and lat is None and loss is None:
            raise InvalidEvent(INVALID, f"{where}fields: no link metric")
        return LinkReading(link, frm, t,
                           None if util is None else _nonneg(f"{where}fields.utilisation_mbps", util),
                           None if lat is None else _nonneg(f"{where}fields.latency_ms", lat),
                           None if loss is None else _ratio(f"{where}fields.loss", loss))
    site = _tag(tags, TELEGRAF_SITE_TAGS)
    if site:
        return _site(site, mapped, f"{where}fields.", t)
    raise InvalidEvent(INVALID, f"{where}tags: neither link_id nor site_id")


def _tag(tags: dict[str, Any], names: tuple[str, ...]) -> str:
    for n in names:
        v = tags.get(n)
        if isinstance(v, str) and v:
            return v
    return ""


def _no_unknown(d: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise InvalidEvent(INVALID, f"{where}{extra[0]}: unknown field (allowed: "
                                    f"{', '.join(sorted(allowed))})")


def _str(d: dict[str, Any], key: str, where: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v:
        raise InvalidEvent(INVALID, f"{where}{key}: missing or not a non-empty string")
    return v


def _num(v: Any, path: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InvalidEvent(INVALID, f"{path} = {v!r}: not a number")
    return float(v)


def _opt_num(d: dict[str, Any], key: str, where: str) -> float | None:
    v = d.get(key)
    return None if v is None else _num(v, f"{where}{key}")


def _nonneg(path: str, v: float) -> float:
    """A finite value >= 0 within the field's physical bounds (`tandem.validation`)."""
    if not math.isfinite(v):
        raise InvalidEvent(OUT_OF_RANGE, f"{path} = {v} (must be a finite number)")
    if v < 0:
        raise InvalidEvent(OUT_OF_RANGE, f"{path} = {v} (must be >= 0)")
    rng = bounds_of(path.rsplit(".", 1)[-1])
    if rng is not None and v > rng[1]:
        raise InvalidEvent(OUT_OF_RANGE, f"{path} = {v:g} (must be within {rng[0]:g}..{rng[1]:g})")
    return v


def _ratio(path: str, v: float) -> float:
    if not (0.0 <= v <= 1.0):  # also false for NaN
        raise InvalidEvent(OUT_OF_RANGE, f"{path} = {v} (must be within 0..1)")
    return v


def _check_time(path: str, t: float, now: float) -> None:
    if not math.isfinite(t) or t < MIN_EVENT_TIME:
        raise InvalidEvent(OUT_OF_RANGE, f"{path} = {t} (not a valid time: before 2000)")
    if t > now + MAX_FUTURE_SKEW_S:
        raise InvalidEvent(OUT_OF_RANGE, f"{path} = {t:.3f} lies in the future")


def _time(v: Any, path: str, record_time: float, now: float) -> float:
    """Seconds since the epoch from a number (s, ms, us or ns, told apart by magnitude) or an
    RFC 3339 string; absent: the record's timestamp."""
    if v is None:
        t = record_time
    elif isinstance(v, str):
        try:
            when = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidEvent(INVALID, f"{path} = {v!r}: not an RFC 3339 time") from None
        if when.tzinfo is None:  # no offset given: UTC, never the worker's local zone
            when = when.replace(tzinfo=timezone.utc)
        t = when.timestamp()
    else:
        t = _num(v, path)
        if t > 1e17:
            t /= 1e9
        elif t > 1e14:
            t /= 1e6
        elif t > 1e11:
            t /= 1e3
    _check_time(path, t, now)
    return t
