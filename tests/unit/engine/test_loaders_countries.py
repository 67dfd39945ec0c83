"""Countries read by the loaders: only from fields that mean a country, aliases everywhere,
GÉANT 2012's country-code labels kept, and a warning for every site left unknown."""

from __future__ import annotations

from pathlib import Path

from tandem.engine.jurisdiction import UNKNOWN, allows, expand
from tandem.engine.loaders import load_topology, load_topology_with_warnings

DATA = Path(__file__).resolve().parents[3] / "data"

_KEYS = """
  <key attr.name="GeoLocation" attr.type="string" for="graph" id="g0" />
  <key attr.name="label" attr.type="string" for="node" id="d0" />
  <key attr.name="Country" attr.type="string" for="node" id="d1" />
  <key attr.name="geocode_name" attr.type="string" for="node" id="d2" />
  <key attr.name="geocode_append" attr.type="string" for="node" id="d3" />
"""


def _zoo(tmp_path: Path, nodes: str, geo: str = "", name: str = "z.graphml") -> Path:
    graph_data = f'<data key="g0">{geo}</data>' if geo else ""
    text = (f'<?xml version="1.0"?>\n<graphml xmlns="http://graphml.graphdrawing.org/xmlns">'
            f'{_KEYS}<graph edgedefault="undirected">{graph_data}\n{nodes}\n'
            '<edge source="a" target="b" /></graph></graphml>\n')
    p = tmp_path / name
    p.write_text(text)
    return p


def _node(nid: str, label: str, **fields: str) -> str:
    keys = {"Country": "d1", "geocode_name": "d2", "geocode_append": "d3"}
    data = "".join(f'<data key="{keys[k]}">{v}</data>' for k, v in fields.items())
    return f'<node id="{nid}"><data key="d0">{label}</data>{data}</node>'


def test_a_label_that_looks_like_a_code_is_a_name_not_a_country(tmp_path: Path) -> None:
    """Finding: a Norwegian town labelled "Bo" loaded as Bolivia."""
    p = _zoo(tmp_path, _node("a", "Bo") + _node("b", "Oslo"), geo="Norway")
    topo, warnings = load_topology_with_warnings(p)
    assert topo.sites["a"].jurisdiction == "NO"  # the graph's GeoLocation, not "BO"
    assert topo.sites["b"].jurisdiction == "NO"
    assert not [w for w in warnings if "country" in w]
    # without a GeoLocation, the town's country is unknown, and the loader says so
    p = _zoo(tmp_path, _node("a", "Bo") + _node("b", "Oslo"), name="y.graphml")
    topo, warnings = load_topology_with_warnings(p)
    assert topo.sites["a"].jurisdiction == ""
    assert any("<node id='a'>" in w and "country unknown" in w and "line" in w
               for w in warnings)
    assert not allows(expand(["BO"]), [topo.sites["a"].jurisdiction])


def test_labels_are_countries_only_when_every_label_is_a_code(tmp_path: Path) -> None:
    all_codes = _node("a", "IE") + _node("b", "UK") + _node("c", "EL")
    topo = load_topology(_zoo(tmp_path, all_codes))
    assert [topo.sites[s].jurisdiction for s in "abc"] == ["IE", "GB", "GR"]
    one_name = _node("a", "IE") + _node("b", "UK") + _node("c", "Athens")
    topo, warnings = load_topology_with_warnings(_zoo(tmp_path, one_name, name="m.graphml"))
    assert {s.jurisdiction for s in topo.sites.values()} == {""}
    assert sum("country unknown" in w for w in warnings) == 3


def test_country_fields_and_places_win_and_a_bad_value_is_named(tmp_path: Path) -> None:
    nodes = (_node("a", "Lyon", Country="Atlantis", geocode_name="Lyon, France")
             + _node("b", "Brno", geocode_append="Czech Republic")
             + _node("c", "Derry", Country="UK"))
    topo, warnings = load_topology_with_warnings(_zoo(tmp_path, nodes))
    assert topo.sites["a"].jurisdiction == "FR"
    assert topo.sites["b"].jurisdiction == "CZ"
    assert topo.sites["c"].jurisdiction == "GB"
    assert any("field 'Country'" in w and "'Atlantis'" in w for w in warnings)


def test_geant2012_keeps_its_country_code_labels_and_says_where_a_field_overrules() -> None:
    topo, warnings = load_topology_with_warnings(DATA / "zoo/Geant2012.graphml")
    assert all(s.jurisdiction for s in topo.sites.values())
    assert len({s.jurisdiction for s in topo.sites.values()}) == 40
    assert topo.sites["n2"].jurisdiction == "GB"  # labelled "UK"
    assert topo.sites["n9"].jurisdiction == "RU"  # label only: no geocode for it
    assert topo.sites["n23"].jurisdiction == "HU"
    assert topo.sites["n25"].jurisdiction == "SI"  # labelled "SL" (Sierra Leone), geocoded
    overruled = [w for w in warnings if "label" in w and "reads as" in w]
    assert len(overruled) == 1 and "'SL'" in overruled[0] and "n25" in overruled[0]


def test_sndlib_suffix_aliases_map_to_iso() -> None:
    """Finding: SNDlib's "uk1.uk" loaded as unknown although UK means GB."""
    topo, warnings = load_topology_with_warnings(DATA / "sndlib/geant.txt")
    assert topo.sites["uk1.uk"].jurisdiction == "GB"
    assert topo.sites["gr1.gr"].jurisdiction == "GR"
    assert topo.sites["ny1.ny"].jurisdiction == ""  # NY is no country code
    unknown = [w for w in warnings if "country unknown" in w]
    assert len(unknown) == 1 and "'ny1.ny'" in unknown[0] and "line 35" in unknown[0]


def test_sndlib_el_suffix_is_greece(tmp_path: Path) -> None:
    p = tmp_path / "t.txt"
    p.write_text("NODES (\n ath.el ( 23.7 37.9 )\n lon.uk ( -0.1 51.5 )\n)\nLINKS (\n"
                 " l1 ( ath.el lon.uk ) 10 0 0 0 ( )\n)\n")
    topo = load_topology(p)
    assert topo.sites["ath.el"].jurisdiction == "GR"
    assert topo.sites["lon.uk"].jurisdiction == "GB"
    assert topo.links["l1"].jurisdictions == {"GR", "GB"}


def test_a_link_to_a_site_of_unknown_country_crosses_the_unknown_country(tmp_path: Path) -> None:
    p = _zoo(tmp_path, _node("a", "Oslo", Country="Norway") + _node("b", "Somewhere"))
    topo = load_topology(p)
    (link,) = topo.links.values()
    assert link.jurisdictions == {"NO", UNKNOWN}
    assert not allows(expand(["EEA"]), link.jurisdictions)


def test_node_link_json_reads_countries_from_country_fields_only(tmp_path: Path) -> None:
    p = tmp_path / "t.json"
    p.write_text('{"nodes": [{"id": "a", "label": "DE", "country": "Germany"},'
                 ' {"id": "b", "label": "FR"}, {"id": "c", "country": "el"}],'
                 ' "links": [{"source": "a", "target": "b", "capacity": 10},'
                 ' {"source": "b", "target": "c", "capacity": 10}]}')
    topo, warnings = load_topology_with_warnings(p)
    assert [topo.sites[s].jurisdiction for s in "abc"] == ["DE", "", "GR"]
    unknown = [w for w in warnings if "country unknown" in w]
    assert len(unknown) == 1 and "nodes[1]" in unknown[0]
