"""Broken files: one test per failure kind; the message names file, element (line) and field.

Also a property: any bytes at all give a Topology or a TopologyFileError, never another
exception (a user's file must never produce a traceback).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tandem.engine.loaders import TopologyFileError, load_demands, load_topology

DATA = Path(__file__).resolve().parents[3] / "data"

HEAD = """<?xml version="1.0"?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key attr.name="Latitude" attr.type="double" for="node" id="lat" />
  <key attr.name="Longitude" attr.type="double" for="node" id="lon" />
  <key attr.name="LinkSpeedRaw" attr.type="double" for="edge" id="raw" />
  <key attr.name="LinkSpeed" attr.type="string" for="edge" id="spd" />
  <key attr.name="LinkSpeedUnits" attr.type="string" for="edge" id="unit" />
  <graph edgedefault="undirected">
    <node id="a" />
    <node id="b" />
"""
TAIL = "  </graph>\n</graphml>\n"


def _err(tmp_path: Path, name: str, text: str | bytes) -> TopologyFileError:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    with pytest.raises(TopologyFileError) as info:
        load_topology(p)
    err = info.value
    assert str(p) in str(err), "the message names the file"
    assert isinstance(err, ValueError)
    return err


# -- GraphML -------------------------------------------------------------------------------
def test_graphml_not_well_formed(tmp_path: Path) -> None:
    err = _err(tmp_path, "x.graphml", HEAD + "    <edge source='a' target='b'>\n" + TAIL)
    assert err.line is not None and err.line >= 11
    assert "not well-formed" in str(err) and f"line {err.line}" in str(err)


def test_graphml_node_without_id(tmp_path: Path) -> None:
    err = _err(tmp_path, "x.graphml", HEAD + "    <node />\n" + TAIL)
    assert (err.element, err.field, err.line) == ("<node>", "id", 11)
    assert "line 11" in str(err) and "'id'" in str(err)


def test_graphml_duplicate_node_id(tmp_path: Path) -> None:
    err = _err(tmp_path, "x.graphml", HEAD + '    <node id="a" />\n' + TAIL)
    assert (err.element, err.field, err.line) == ("<node id='a'>", "id", 11)


def test_graphml_unknown_endpoint(tmp_path: Path) -> None:
    err = _err(tmp_path, "x.graphml",
               HEAD + '    <edge id="e7" source="a" target="zz" />\n' + TAIL)
    assert (err.element, err.field, err.line) == ("<edge id='e7'>", "target", 11)
    assert "'zz'" in str(err)


def test_graphml_missing_endpoint(tmp_path: Path) -> None:
    err = _err(tmp_path, "x.graphml", HEAD + '    <edge target="a" />\n' + TAIL)
    assert (err.element, err.field) == ("<edge #0>", "source")


def test_graphml_non_numeric_capacity(tmp_path: Path) -> None:
    err = _err(tmp_path, "x.graphml", HEAD + '    <edge id="e0" source="a" target="b">\n'
               '      <data key="raw">fast</data>\n    </edge>\n' + TAIL)
    assert (err.element, err.field, err.line) == ("<edge id='e0'>", "LinkSpeedRaw", 11)
    assert "'fast'" in str(err)


def test_graphml_unknown_speed_unit(tmp_path: Path) -> None:
    err = _err(tmp_path, "x.graphml", HEAD + '    <edge id="e0" source="a" target="b">'
               '<data key="spd">10</data><data key="unit">furlongs</data></edge>\n' + TAIL)
    assert err.field == "LinkSpeedUnits"


def test_graphml_bad_latitude(tmp_path: Path) -> None:
    text = HEAD.replace('<node id="b" />',
                        '<node id="b"><data key="lat">95</data><data key="lon">1</data></node>')
    err = _err(tmp_path, "x.graphml", text + TAIL)
    assert (err.element, err.field, err.line) == ("<node id='b'>", "Latitude", 10)


def test_graphml_latitude_without_longitude(tmp_path: Path) -> None:
    text = HEAD.replace('<node id="b" />', '<node id="b"><data key="lat">5</data></node>')
    err = _err(tmp_path, "x.graphml", text + TAIL)
    assert err.field == "Longitude"


def test_graphml_wrong_root_and_no_graph(tmp_path: Path) -> None:
    assert _err(tmp_path, "x.graphml", "<svg/>").element == "<svg>"
    assert "no <graph>" in str(_err(tmp_path, "y.graphml", "<graphml/>"))


# -- SNDlib --------------------------------------------------------------------------------
SND = "NODES (\n  a ( 1.0 2.0 )\n  b ( 3.0 4.0 )\n)\nLINKS (\n{links})\n"


def test_sndlib_unknown_node_in_link(tmp_path: Path) -> None:
    err = _err(tmp_path, "x.txt", SND.format(links="  l1 ( a c ) 10 0 0 0 ( )\n"))
    assert (err.element, err.field, err.line) == ("link 'l1'", "target", 6)


def test_sndlib_non_numeric_capacity(tmp_path: Path) -> None:
    err = _err(tmp_path, "x.txt", SND.format(links="  l1 ( a b ) ten 0 0 0 ( )\n"))
    assert (err.element, err.field, err.line) == ("link 'l1'", "pre_installed_capacity", 6)


def test_sndlib_bad_coordinate(tmp_path: Path) -> None:
    err = _err(tmp_path, "x.txt", "NODES (\n  a ( east 2.0 )\n)\nLINKS (\n)\n")
    assert (err.element, err.field, err.line) == ("node 'a'", "longitude", 2)


def test_sndlib_truncated(tmp_path: Path) -> None:
    err = _err(tmp_path, "x.txt", SND.format(links="  l1 ( a b ) 10 0 0")[:-2])
    assert "unexpected end of file" in str(err) and err.element == "link 'l1'"


def test_sndlib_missing_links_section(tmp_path: Path) -> None:
    err = _err(tmp_path, "x.txt", "NODES (\n  a ( 1 2 )\n)\n")
    assert err.field == "LINKS"


def test_sndlib_bad_demand(tmp_path: Path) -> None:
    p = tmp_path / "d.txt"
    p.write_text(SND.format(links="  l1 ( a b ) 10 0 0 0 ( )\n")
                 + "DEMANDS (\n  d1 ( a b ) 1 lots UNLIMITED\n)\n")
    with pytest.raises(TopologyFileError) as info:
        load_demands(p)
    assert (info.value.element, info.value.field, info.value.line) == (
        "demand 'd1'", "demand_value", 9)


# -- node-link JSON ------------------------------------------------------------------------
def test_json_syntax_error_has_line(tmp_path: Path) -> None:
    err = _err(tmp_path, "x.json", '{"nodes": [\n {"id": 1},\n ]}')
    assert err.line == 3 and "not valid JSON" in str(err)


def test_json_node_without_id(tmp_path: Path) -> None:
    err = _err(tmp_path, "x.json", '{"nodes": [{"id": 1}, {"name": "x"}], "links": []}')
    assert (err.element, err.field) == ("nodes[1]", "id")


def test_json_unknown_endpoint(tmp_path: Path) -> None:
    err = _err(tmp_path, "x.json",
               '{"nodes": [{"id": 1}], "links": [{"source": 1, "target": 9}]}')
    assert (err.element, err.field) == ("links[0]", "target")


def test_json_non_numeric_capacity(tmp_path: Path) -> None:
    err = _err(tmp_path, "x.json", '{"nodes": [{"id": 1}, {"id": 2}], '
               '"links": [{"source": 1, "target": 2, "capacity": "big"}]}')
    assert (err.element, err.field) == ("links[0]", "capacity")


def test_json_negative_capacity(tmp_path: Path) -> None:
    err = _err(tmp_path, "x.json", '{"nodes": [{"id": 1}, {"id": 2}], '
               '"links": [{"source": 1, "target": 2, "capacity": -5}]}')
    assert err.field == "capacity" and "minimum" in str(err)


# -- any format ----------------------------------------------------------------------------
def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TopologyFileError, match="cannot read"):
        load_topology(tmp_path / "nope.graphml")


def test_not_utf8(tmp_path: Path) -> None:
    err = _err(tmp_path, "x.json", b'{"nodes": "\xff\xfe"}')
    assert "UTF-8" in str(err)


def test_unrecognised_format(tmp_path: Path) -> None:
    assert "unrecognised format" in str(_err(tmp_path, "x.dat", "hello"))


_REF = [(DATA / rel).read_bytes() for rel in
        ("zoo/Abilene.graphml", "sndlib/abilene.txt", "b4/B4.json")]
_SUFFIX = [".graphml", ".txt", ".json"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 2), cut=st.floats(0.0, 1.0), junk=st.binary(max_size=40),
       pos=st.floats(0.0, 1.0))
def test_mutated_reference_files_never_crash(
    tmp_path: Path, which: int, cut: float, junk: bytes, pos: float
) -> None:
    data = _REF[which]
    data = data[: int(len(data) * cut)]
    at = int(len(data) * pos)
    data = data[:at] + junk + data[at:]
    p = tmp_path / f"m{_SUFFIX[which]}"
    p.write_bytes(data)
    try:
        load_topology(p)
    except TopologyFileError as exc:
        assert str(p) in str(exc)
