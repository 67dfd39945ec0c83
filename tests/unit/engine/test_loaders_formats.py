"""Loaders on small files written here: the Topology Zoo toolset GraphML fields, node-link
JSON variants, format sniffing, and the field defaults of docs/TOPOLOGY.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from tandem.engine.loaders import TopologyFileError, load_demands, load_topology
from tandem.engine.loaders.countries import country_code, country_from_place
from tandem.engine.loaders.capacity import capacity_from_label
from tandem.engine.loaders.defaults import FIBRE_KM_PER_MS, great_circle_km

ZOO = """<?xml version="1.0" encoding="utf-8"?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key attr.name="Network" attr.type="string" for="graph" id="d0" />
  <key attr.name="Latitude" attr.type="double" for="node" id="d29" />
  <key attr.name="Longitude" attr.type="double" for="node" id="d31" />
  <key attr.name="Country" attr.type="string" for="node" id="d32" />
  <key attr.name="label" attr.type="string" for="node" id="d33" />
  <key attr.name="LinkSpeedRaw" attr.type="double" for="edge" id="d40" />
  <key attr.name="LinkSpeed" attr.type="string" for="edge" id="d38" />
  <key attr.name="LinkSpeedUnits" attr.type="string" for="edge" id="d39" />
  <key attr.name="LinkLabel" attr.type="string" for="edge" id="d42" />
  <graph edgedefault="undirected">
    <data key="d0">Tiny</data>
    <node id="0"><data key="d29">51.50853</data><data key="d31">-0.12574</data>
      <data key="d32">United Kingdom</data><data key="d33">London</data></node>
    <node id="1"><data key="d29">48.85341</data><data key="d31">2.3488</data>
      <data key="d32">France</data><data key="d33">Paris</data></node>
    <node id="2"><data key="d29">52.52437</data><data key="d31">13.41053</data>
      <data key="d32">Germany</data><data key="d33">Berlin</data></node>
    <node id="3"><data key="d33">Nowhere</data></node>
    <edge source="0" target="1"><data key="d40">10000000000.0</data></edge>
    <edge source="1" target="2"><data key="d38">2.5</data><data key="d39">G</data></edge>
    <edge source="2" target="0"><data key="d42">155 Mbps</data></edge>
    <edge source="2" target="3"><data key="d42">Lit fibre</data></edge>
    <edge source="3" target="3" />
  </graph>
</graphml>
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_zoo_toolset_graphml(tmp_path: Path) -> None:
    topo = load_topology(_write(tmp_path, "tiny.graphml", ZOO))
    assert topo.name == "Tiny"
    assert len(topo.sites) == 4
    assert len(topo.links) == 4  # the self-loop is dropped
    lon = topo.sites["0"]
    assert (lon.name, lon.jurisdiction) == ("London", "GB")
    assert (lon.latitude, lon.longitude) == (51.50853, -0.12574)
    assert topo.sites["3"].jurisdiction == ""
    e0, e1, e2, e3 = (topo.links[f"e{i}"] for i in range(4))
    assert e0.capacity_ab_mbps == e0.capacity_ba_mbps == 10000.0  # LinkSpeedRaw bit/s
    assert e1.capacity_ab_mbps == 2500.0  # LinkSpeed x LinkSpeedUnits
    assert e2.capacity_ab_mbps == 155.0  # LinkLabel
    assert e3.capacity_ab_mbps == 1000.0  # unrecognised label: the default
    km = great_circle_km(51.50853, -0.12574, 48.85341, 2.3488)
    assert 340 < km < 345
    assert e0.latency_ms == pytest.approx(km / FIBRE_KM_PER_MS)
    assert e3.latency_ms == 1.0  # an endpoint without coordinates
    assert e0.jurisdictions == frozenset({"GB", "FR"})


def test_format_sniffed_without_extension(tmp_path: Path) -> None:
    topo = load_topology(_write(tmp_path, "topology", ZOO))
    assert len(topo.sites) == 4
    nl = load_topology(_write(tmp_path, "b4", '{"nodes": [{"id": 1}, {"id": 2}], '
                                              '"links": [{"source": 1, "target": 2}]}'))
    assert len(nl.links) == 1
    snd = load_topology(_write(tmp_path, "net", "NODES (\n a ( 0 0 )\n b ( 1 1 )\n)\n"
                                               "LINKS (\n l ( a b ) 10 0 0 0 ( )\n)\n"))
    assert snd.links["l"].capacity_ab_mbps == 10.0


def test_node_link_undirected_and_directed(tmp_path: Path) -> None:
    und = load_topology(_write(tmp_path, "u.json", """{"directed": false, "nodes": [
        {"id": "a", "latitude": 0, "longitude": 0, "country": "Spain"},
        {"id": "b", "latitude": 0, "longitude": 1, "label": "B"}],
        "links": [{"source": "a", "target": "b"}]}"""))
    link = und.links["a--b"]
    assert link.capacity_ab_mbps == link.capacity_ba_mbps == 1000.0
    assert und.sites["a"].jurisdiction == "ES" and und.sites["b"].name == "B"
    assert link.latency_ms == pytest.approx(great_circle_km(0, 0, 0, 1) / FIBRE_KM_PER_MS)
    di = load_topology(_write(tmp_path, "d.json", """{"directed": true, "multigraph": true,
        "nodes": [{"id": 2}, {"id": 10}],
        "edges": [{"source": 10, "target": 2, "capacity": 7, "latency_ms": 3},
                  {"source": 10, "target": 2, "capacity": 5}]}"""))
    link = di.links["10--2"]  # endpoints in sorted (string) order
    assert (link.a, link.b) == ("10", "2")
    assert link.capacity_ab_mbps == 12.0  # parallel arcs summed
    assert link.capacity_ba_mbps == 0.0  # no arc 2 -> 10
    assert link.latency_ms == 3.0


def test_load_demands_only_for_sndlib(tmp_path: Path) -> None:
    with pytest.raises(TopologyFileError, match="DEMANDS"):
        load_demands(_write(tmp_path, "t.graphml", ZOO))


def test_capacity_labels() -> None:
    assert capacity_from_label("10 Gbps") == 10000.0
    assert capacity_from_label("2,5 Gbps") == 2500.0
    assert capacity_from_label("OC-192c") == pytest.approx(9953.28)
    assert capacity_from_label("STM-16") == pytest.approx(2488.32)
    assert capacity_from_label("GTS CE own Network") is None
    assert capacity_from_label("") is None


def test_country_names() -> None:
    assert country_code("Czech Republic") == "CZ"
    assert country_code("united states") == "US"
    assert country_code("UK") == "GB"
    assert country_code("EL") == "GR"
    assert country_code("Atlantis") == ""
    assert country_from_place("Dublin, Ireland") == "IE"
    assert country_from_place("Somewhere") == ""
