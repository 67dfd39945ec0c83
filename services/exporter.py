"""Telemetry exporter: replay files and live interface counters onto the telemetry topic.

Sources (see docs/TELEMETRY.md for the exact formats):
- a CSV or JSON-lines replay file of link/site samples (validated whole before anything is
  sent; an error names the file, the line and the field);
- host interface counters from /sys/class/net/<if>/statistics/ and Open vSwitch interface
  counters from `ovs-vsctl --format=json list Interface`, turned into a rate per interval and
  mapped to (link_id, from_site) by a small mapping (`IF=LINK:FROM_SITE`).

Encoding: a sample with utilisation, latency and loss all known is sent as a binary
`TelemetrySample`; a partial sample (counters give no latency) is sent as the flat JSON shape,
because a protobuf `LinkSample` cannot say "not measured" (0 would read as 0 ms).
"""

from __future__ import annotations

import csv
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tandem.events import new_meta
from tandem.telemetry import PortCounter
from tandem.telemetry_formats import LinkReading, Reading, SiteReading, parse_json
from tandem.v1 import telemetry_pb2 as tm
from tandem.validation import InvalidEvent

LINK_COLUMNS = ("time", "link_id", "from_site", "utilisation_mbps", "latency_ms", "loss")
SITE_COLUMNS = ("time", "site_id", "free_vcpus", "free_memory_gib", "free_storage_gib")
SOURCE = "exporter"


class ExportError(Exception):
    """A user mistake (bad file, bad mapping): the message names file, line and field."""


@dataclass(frozen=True)
class Record:
    key: bytes
    value: bytes


def encode(r: Reading, force_json: bool = False) -> Record:
    """The telemetry record for a reading (protobuf when complete, else flat JSON)."""
    if isinstance(r, LinkReading):
        complete = None not in (r.utilisation_mbps, r.latency_ms, r.loss)
        if complete and not force_json:
            s = tm.TelemetrySample(meta=new_meta(SOURCE, at=r.t), link=tm.LinkSample(
                link_id=r.link_id, from_site=r.from_site, utilisation_mbps=r.utilisation_mbps,
                latency_ms=r.latency_ms, loss=r.loss))
            return Record(r.link_id.encode(), s.SerializeToString())
        d: dict[str, Any] = {"link_id": r.link_id, "from_site": r.from_site, "time": r.t}
        for k in ("utilisation_mbps", "latency_ms", "loss"):
            if getattr(r, k) is not None:
                d[k] = getattr(r, k)
        return Record(r.link_id.encode(), json.dumps(d, separators=(",", ":")).encode())
    if isinstance(r, SiteReading):
        if force_json:
            d = {"site_id": r.site_id, "time": r.t, "free_vcpus": r.free_vcpus,
                 "free_memory_gib": r.free_memory_gib, "free_storage_gib": r.free_storage_gib}
            return Record(r.site_id.encode(), json.dumps(d, separators=(",", ":")).encode())
        s = tm.TelemetrySample(meta=new_meta(SOURCE, at=r.t), site=tm.SiteSample(
            site_id=r.site_id, free_vcpus=r.free_vcpus, free_memory_gib=r.free_memory_gib,
            free_storage_gib=r.free_storage_gib))
        return Record(r.site_id.encode(), s.SerializeToString())
    raise TypeError(f"cannot export {type(r).__name__}")


def read_replay(path: str | Path, now: float | None = None) -> list[Reading]:
    """Every sample of a CSV (.csv) or JSON-lines (.jsonl/.json/.ndjson) file, validated."""
    p = Path(path)
    now = time.time() if now is None else now
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ExportError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    rows = _csv_rows(p, text) if p.suffix.lower() == ".csv" else _jsonl_rows(p, text)
    out: list[Reading] = []
    for line, obj in rows:
        try:
            out.extend(parse_json(json.dumps(obj).encode(), now, now))
        except InvalidEvent as exc:
            raise ExportError(f"{p}:{line}: {exc.detail} ({exc.reason})") from None
    if not out:
        raise ExportError(f"{p}: no samples")
    return out


def _jsonl_rows(p: Path, text: str) -> Iterator[tuple[int, Any]]:
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise ExportError(f"{p}:{n}: not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise ExportError(f"{p}:{n}: expected a JSON object per line")
        yield n, obj


def _csv_rows(p: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(text.splitlines())
    header: list[str] | None = None
    for row in reader:
        n = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()) or row[0].startswith("#"):
            continue
        if header is None:
            header = [h.strip() for h in row]
            known = set(LINK_COLUMNS) | set(SITE_COLUMNS)
            unknown = [h for h in header if h not in known]
            if unknown:
                raise ExportError(f"{p}:{n}: unknown column {unknown[0]!r} (known: "
                                  f"{', '.join(LINK_COLUMNS + SITE_COLUMNS[1:])})")
            if "link_id" not in header and "site_id" not in header:
                raise ExportError(f"{p}:{n}: header needs a link_id or a site_id column")
            continue
        if len(row) != len(header):
            raise ExportError(f"{p}:{n}: {len(row)} fields, the header has {len(header)}")
        cells = {h: c.strip() for h, c in zip(header, row, strict=True) if c.strip()}
        obj: dict[str, Any] = {}
        kind = LINK_COLUMNS if cells.get("link_id") else SITE_COLUMNS
        for h, c in cells.items():
            if h not in kind:
                raise ExportError(f"{p}:{n}: {h}: not a column of a "
                                  f"{'link' if kind is LINK_COLUMNS else 'site'} row")
            if h in ("link_id", "from_site", "site_id"):
                obj[h] = c
            elif h == "time":
                obj[h] = _number_or_text(c)
            else:
                try:
                    obj[h] = float(c)
                except ValueError:
                    raise ExportError(f"{p}:{n}: {h} = {c!r}: not a number") from None
        yield n, obj


def _number_or_text(c: str) -> float | str:
    try:
        return float(c)
    except ValueError:
        return c


# -- live counters ------------------------------------------------------------------------

def parse_mapping(items: list[str], map_file: str | None) -> dict[str, tuple[str, str]]:
    """Interface name -> (link_id, from_site), from `IF=LINK:FROM` flags and/or a file of
    `IF LINK FROM` lines."""
    out: dict[str, tuple[str, str]] = {}
    entries: list[tuple[str, str]] = [("--map", i) for i in items]
    if map_file:
        try:
            lines = Path(map_file).read_text().splitlines()
        except OSError as exc:
            raise ExportError(f"{map_file}: cannot read: {exc.strerror or exc}") from None
        for n, line in enumerate(lines, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 3:
                raise ExportError(f"{map_file}:{n}: expected 'interface link_id from_site', "
                                  f"got {line!r}")
            out[parts[0]] = (parts[1], parts[2])
    for where, item in entries:
        iface, _, rest = item.partition("=")
        link, _, frm = rest.partition(":")
        if not (iface and link and frm):
            raise ExportError(f"{where} {item!r}: expected INTERFACE=LINK_ID:FROM_SITE")
        out[iface] = (link, frm)
    if not out:
        raise ExportError("no interface mapping: give --map IF=LINK:FROM_SITE or --map-file")
    return out


@dataclass(frozen=True)
class Counters:
    tx_bytes: int
    tx_packets: int
    tx_dropped: int


def host_counters(ifaces: list[str], root: str = "/sys/class/net") -> dict[str, Counters]:
    out: dict[str, Counters] = {}
    for i in ifaces:
        base = Path(root) / i / "statistics"
        try:
            vals = [int((base / f).read_text()) for f in ("tx_bytes", "tx_packets", "tx_dropped")]
        except (OSError, ValueError) as exc:
            raise ExportError(f"{base}: cannot read interface counters: {exc}") from None
        out[i] = Counters(*vals)
    return out


def ovs_counters(ifaces: list[str], ovs_json: str | None = None) -> dict[str, Counters]:
    """Counters of OVS interfaces from `ovs-vsctl --format=json list Interface` output."""
    if ovs_json is None:
        try:
            ovs_json = subprocess.run(
                ["ovs-vsctl", "--format=json", "--columns=name,statistics", "list", "Interface"],
                check=True, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise ExportError(f"ovs-vsctl list Interface failed: {exc}") from None
    try:
        doc = json.loads(ovs_json)
        names = doc["headings"]
        rows = [dict(zip(names, r, strict=True)) for r in doc["data"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"ovs-vsctl output not understood: {exc!r}") from None
    found: dict[str, Counters] = {}
    for r in rows:
        name = r.get("name")
        if name not in ifaces:
            continue
        stats = dict(r["statistics"][1]) if isinstance(r.get("statistics"), list) else {}
        found[name] = Counters(int(stats.get("tx_bytes", 0)), int(stats.get("tx_packets", 0)),
                               int(stats.get("tx_dropped", 0)))
    missing = sorted(set(ifaces) - set(found))
    if missing:
        raise ExportError(f"OVS has no interface {missing[0]!r}")
    return found


class CounterRates:
    """Counter snapshots -> LinkReadings (utilisation and egress loss; no latency)."""

    def __init__(self, mapping: dict[str, tuple[str, str]]) -> None:
        self.mapping = mapping
        self.counters = {i: PortCounter() for i in mapping}

    def readings(self, snap: dict[str, Counters], t: float) -> list[Reading]:
        out: list[Reading] = []
        for iface, c in sorted(snap.items()):
            rate = self.counters[iface].update(c.tx_bytes, c.tx_packets, c.tx_dropped, t)
            if rate is not None:
                link, frm = self.mapping[iface]
                out.append(LinkReading(link, frm, t, rate[0], None, rate[1]))
        return out
