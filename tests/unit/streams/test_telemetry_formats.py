"""Accepted telemetry encodings (tandem.telemetry_formats), pure."""

from __future__ import annotations

import json
import math

import pytest
from google.protobuf import json_format

from tandem.events import new_meta
from tandem.telemetry_formats import LinkReading, PortReading, SiteReading, parse
from tandem.v1 import telemetry_pb2 as tm
from tandem.validation import InvalidEvent

NOW = 1_700_000_000.0


def reason(payload: bytes) -> str:
    with pytest.raises(InvalidEvent) as e:
        parse(payload, NOW, NOW)
    return e.value.reason


def link_pb(**kw: float) -> tm.TelemetrySample:
    return tm.TelemetrySample(meta=new_meta("t", at=NOW - 1), link=tm.LinkSample(
        link_id="ab", from_site="a", utilisation_mbps=kw.get("u", 5.0),
        latency_ms=kw.get("lat", 12.0), loss=kw.get("loss", 0.01)))


def test_protobuf() -> None:
    [r] = parse(link_pb().SerializeToString(), 0.0, NOW)
    assert r == LinkReading("ab", "a", pytest.approx(NOW - 1), 5.0, 12.0, 0.01)


def test_protobuf_json_mapping_with_and_without_meta() -> None:
    js = json_format.MessageToJson(link_pb(), indent=None).encode()
    [r] = parse(js, 0.0, NOW)
    assert isinstance(r, LinkReading) and r.latency_ms == 12.0
    [s] = parse(b'{"site": {"siteId": "a", "freeVcpus": 3}}', NOW - 5, NOW)
    assert s == SiteReading("a", NOW - 5, 3.0, 0.0, 0.0)  # record time stands in


def test_flat_json() -> None:
    [r] = parse(json.dumps({"link_id": "ab", "from_site": "b", "latency_ms": 7,
                            "time": "2023-11-14T22:13:10Z"}).encode(), 0.0, NOW)
    assert r == LinkReading("ab", "b", 1699999990.0, None, 7.0, None)
    [s] = parse(b' {"site_id": "a", "free_vcpus": 8, "free_memory_gib": 16}', NOW, NOW)
    assert s == SiteReading("a", NOW, 8.0, 16.0, 0.0)
    [r] = parse(b'{"link_id":"ab","from_site":"a","loss":0.5,"time":1699999990123}', 0, NOW)
    assert r.t == pytest.approx(1699999990.123)  # milliseconds told apart by magnitude


def test_telegraf() -> None:
    doc = {"name": "ping", "tags": {"link_id": "ab", "from_site": "a", "host": "probe1"},
           "fields": {"average_response_ms": 12.5, "percent_packet_loss": 2.0,
                      "packets_transmitted": 5}, "timestamp": 1699999990}
    [r] = parse(json.dumps(doc).encode(), 0.0, NOW)
    assert r == LinkReading("ab", "a", 1699999990.0, None, 12.5, pytest.approx(0.02))
    batch = {"metrics": [doc, {"name": "cap", "tags": {"site_id": "a"},
                               "fields": {"free_vcpus": 4}, "timestamp": 1699999990}]}
    rs = parse(json.dumps(batch).encode(), 0.0, NOW)
    assert [type(x) for x in rs] == [LinkReading, SiteReading]
    arr = parse(json.dumps([doc, doc]).encode(), 0.0, NOW)
    assert len(arr) == 2


def test_port_sample() -> None:
    s = tm.TelemetrySample(meta=new_meta("t", at=NOW), port=tm.PortSample(
        datapath_id=7, port_no=2, tx_bytes=10, tx_packets=1, duration_s=3.0))
    [p] = parse(s.SerializeToString(), 0.0, NOW)
    assert p == PortReading(7, 2, NOW, 10, 1, 0, 3.0)


@pytest.mark.parametrize("payload,why", [
    (b"", "undecodable"),
    (b"\x0a\xff\xff garbage", "undecodable"),
    (b"{not json", "undecodable"),
    (b'{"link_id": "ab", "from_site": "a", "latency_ms": NaN}', "out_of_range"),
    (b'{"link_id": "ab", "from_site": "a", "latency_ms": -1}', "out_of_range"),
    (b'{"link_id": "ab", "from_site": "a", "loss": 1.5}', "out_of_range"),
    (b'{"link_id": "ab", "from_site": "a", "latency_ms": 1, "time": 9999999999}',
     "out_of_range"),
    (b'{"link_id": "ab", "from_site": "a", "latency": 1}', "invalid"),
    (b'{"link_id": "ab", "from_site": "a"}', "invalid"),
    (b'{"link_id": "ab", "latency_ms": 1}', "invalid"),
    (b'{"link_id": "ab", "from_site": "a", "latency_ms": "12"}', "invalid"),
    (b'{"name": "x", "tags": {"link_id": "ab"}, "fields": {"latency_ms": 1}}', "invalid"),
    (b'{"name": "x", "tags": {}, "fields": {"latency_ms": 1}}', "invalid"),
    (b'{"name": "x", "tags": {"site_id": "a"}, "fields": {"uptime": 1}}', "invalid"),
    (b'{"whatever": 1}', "invalid"),
    (b'[]', "invalid"),
    (b'{"link": {"linkId": "ab", "bogus": 1}}', "invalid"),
])
def test_bad_input_reasons(payload: bytes, why: str) -> None:
    assert reason(payload) == why


def test_protobuf_checks() -> None:
    bad = link_pb(lat=math.nan)
    assert reason(bad.SerializeToString()) == "out_of_range"
    v = link_pb()
    v.meta.schema_version = 9
    assert reason(v.SerializeToString()) == "unknown_schema_version"
    no_meta = tm.TelemetrySample(link=tm.LinkSample(link_id="ab", from_site="a", latency_ms=1))
    assert reason(no_meta.SerializeToString()) == "invalid"
    future = link_pb()
    future.meta.time.seconds = int(NOW + 3600)
    assert reason(future.SerializeToString()) == "out_of_range"


@pytest.mark.parametrize("length_byte", [ord("{"), ord("[")])
def test_protobuf_that_looks_like_json_after_a_newline(length_byte: int) -> None:
    """A TelemetrySample starts with 0x0a ("\\n"); its meta length may be "{" or "["."""
    s = link_pb()
    base = len(s.meta.SerializeToString()) - len(s.meta.source)
    s.meta.source = "x" * (length_byte - base)
    raw = s.SerializeToString()
    assert raw[:2] == bytes([0x0A, length_byte])
    [r] = parse(raw, 0.0, NOW)
    assert isinstance(r, LinkReading) and r.latency_ms == 12.0
    [j] = parse(b'\n  {"site_id": "a", "free_vcpus": 1}', NOW, NOW)  # and JSON after blanks
    assert isinstance(j, SiteReading)
