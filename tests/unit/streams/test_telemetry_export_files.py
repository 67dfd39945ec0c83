"""Replay files of `tandem export`: bad input names file, line and field (no broker)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from tandem.cli import UserError
from tandem.services import cli_export
from tandem.services.exporter import (ExportError, encode, ovs_counters, parse_mapping,
                                      read_replay)
from tandem.telemetry_formats import LinkReading


@pytest.mark.parametrize("name,text,expect", [
    ("a.csv", "link_id,from_site,latency\nab,a,1\n", "a.csv:1: unknown column 'latency'"),
    ("b.csv", "link_id,from_site,latency_ms\nab,a,fast\n", "b.csv:2: latency_ms = 'fast'"),
    ("c.csv", "link_id,from_site,latency_ms\nab,a,1\nab,a,-4\n", "c.csv:3: latency_ms = -4.0"),
    ("d.csv", "link_id,from_site,latency_ms\nab,a\n", "d.csv:2: 2 fields"),
    ("e.jsonl", '{"link_id":"ab","from_site":"a","loss":0.1}\n{"link_id":"ab"\n',
     "e.jsonl:2: not JSON"),
    ("f.jsonl", '\n{"link_id":"ab","from_site":"a","loss":7}\n', "f.jsonl:2: loss = 7"),
    ("g.jsonl", '{"site_id":"s"}\n', "g.jsonl:1: free_vcpus: missing"),
    ("h.csv", "time,link_id,from_site,loss\nyesterday,ab,a,0.1\n", "h.csv:2: time = 'yesterday'"),
])
def test_bad_files_name_file_line_field(tmp_path: Any, name: str, text: str,
                                        expect: str) -> None:
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(ExportError) as e:
        read_replay(p)
    assert str(e.value).startswith(str(tmp_path / expect))


def test_missing_file_is_a_user_error(tmp_path: Any) -> None:
    parser = argparse.ArgumentParser()
    cli_export.register(parser.add_subparsers())
    args = parser.parse_args(["export", "--file", str(tmp_path / "nope.csv")])
    with pytest.raises(UserError, match="nope.csv: cannot read"):
        args.func(args)


def test_encoding_and_mapping(tmp_path: Any) -> None:
    rec = encode(LinkReading("ab", "a", 1.0, 5.0, None, 0.0))
    assert json.loads(rec.value) == {"link_id": "ab", "from_site": "a", "time": 1.0,
                                     "utilisation_mbps": 5.0, "loss": 0.0}
    assert not encode(LinkReading("ab", "a", 1.0, 5.0, 2.0, 0.0)).value.startswith(b"{")
    m = tmp_path / "links.map"
    m.write_text("# iface link from\nveth1 ab a\n")
    assert parse_mapping(["veth2=ac:a"], str(m)) == {"veth1": ("ab", "a"), "veth2": ("ac", "a")}
    m.write_text("veth1 ab\n")
    with pytest.raises(ExportError, match="links.map:1"):
        parse_mapping([], str(m))
    with pytest.raises(ExportError, match="INTERFACE=LINK_ID:FROM_SITE"):
        parse_mapping(["veth1"], None)


def test_ovs_json() -> None:
    doc = {"headings": ["name", "statistics"], "data": [
        ["p1", ["map", [["rx_bytes", 5], ["tx_bytes", 1000], ["tx_packets", 10],
                        ["tx_dropped", 1]]]],
        ["p2", ["map", []]]]}
    c = ovs_counters(["p1"], json.dumps(doc))
    assert c["p1"].tx_bytes == 1000 and c["p1"].tx_dropped == 1
    with pytest.raises(ExportError, match="no interface 'p9'"):
        ovs_counters(["p9"], json.dumps(doc))
