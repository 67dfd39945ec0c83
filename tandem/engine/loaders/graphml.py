"""Topology Zoo GraphML (both the toolset's files and the yEd sources) → `Topology`.

Conventions (docs/TOPOLOGY.md):
- Site id = the GraphML node id (unique by the GraphML spec); name = the `label` data, or the
  yEd `NodeLabel` text, or the id.
- Every edge is a bidirectional link with the same capacity in both directions, whatever the
  graph's `edgedefault`: Topology Zoo marks its graphs "directed" but lists each cable once.
- Parallel edges stay distinct links (id = the edge's `id` attribute, else "e<index>"), so link
  counts match the file; self-loops carry no traffic and are dropped.
- Capacity (Mbps): `LinkSpeedRaw` (bit/s), else `LinkSpeed` × `LinkSpeedUnits`, else a
  `capacity` data field, else a rate recognised in `LinkLabel`/`label` ("10 Gbps",
  "OC-192c"), else 1000.
- Country: `Country`, else `geocode_country`, else the "City, Country" `geocode_name`, else a
  label that is itself an ISO code (GÉANT's yEd file labels nodes "IE", "UK"), else the
  graph's `GeoLocation` when that names one country (Abilene: "US"), else "" (unknown).
- Latency: great-circle at fibre speed between the nodes' coordinates; without coordinates,
  between the capitals of the endpoints' countries when both are known and differ; else 1 ms.
"""

from __future__ import annotations

from ..topology import Link, Site, Topology
from . import _xml
from .common import coords_of, make_link, make_site, to_float
from .countries import country_code, country_from_place
from .defaults import DEFAULT_CAPACITY_MBPS, capacity_from_label, unit_factor_mbps
from .errors import TopologyFileError


def _keys(root: _xml.Element) -> dict[str, tuple[str, str, str | None]]:
    """key id → (domain, attr.name, default)."""
    out: dict[str, tuple[str, str, str | None]] = {}
    for k in root.find_all("key"):
        kid = k.attrs.get("id")
        if not kid:
            continue
        default = k.find("default")
        out[kid] = (
            k.attrs.get("for", "all"),
            k.attrs.get("attr.name", ""),
            default.text.strip() if default is not None else None,
        )
    return out


def _data(
    el: _xml.Element, keys: dict[str, tuple[str, str, str | None]], domain: str
) -> dict[str, str]:
    values: dict[str, str] = {}
    for kid, (dom, name, default) in keys.items():
        if name and default is not None and dom in (domain, "all"):
            values[name] = default
    for d in el.find_all("data"):
        spec = keys.get(d.attrs.get("key", ""))
        if spec is None or not spec[1]:
            continue
        values[spec[1]] = d.text.strip()
    return values


def _capacity(values: dict[str, str], path: str, element: str, line: int) -> float:
    raw = values.get("LinkSpeedRaw", "")
    if raw:
        return to_float(raw, path, element, "LinkSpeedRaw", line, minimum=0.0) / 1e6
    speed = values.get("LinkSpeed", "")
    if speed:
        value = to_float(speed, path, element, "LinkSpeed", line, minimum=0.0)
        units = values.get("LinkSpeedUnits", "M")
        factor = unit_factor_mbps(units)
        if factor is None:
            raise TopologyFileError(path, f"unknown unit {units!r}", element=element,
                                    field="LinkSpeedUnits", line=line)
        return value * factor
    cap = values.get("capacity", "")
    if cap:
        return to_float(cap, path, element, "capacity", line, minimum=0.0)
    for fld in ("LinkLabel", "label"):
        parsed = capacity_from_label(values.get(fld, ""))
        if parsed is not None:
            return parsed
    return DEFAULT_CAPACITY_MBPS


def _country(values: dict[str, str], label: str, graph_country: str) -> str:
    for fld in ("Country", "geocode_country"):
        if values.get(fld):
            return country_code(values[fld])
    if values.get("geocode_name"):
        code = country_from_place(values["geocode_name"])
        if code:
            return code
    if len(label.strip()) == 2 and country_code(label):
        return country_code(label)
    return graph_country


def parse_graphml(data: bytes, path: str) -> Topology:
    try:
        root = _xml.parse(data)
    except _xml.XmlSyntaxError as exc:
        raise TopologyFileError(path, f"not well-formed XML: {exc.message}",
                                element="document", line=exc.line) from None
    if root.tag != "graphml":
        raise TopologyFileError(path, f"root element is <{root.tag}>, expected <graphml>",
                                element=f"<{root.tag}>", line=root.line)
    graph = root.find("graph")
    if graph is None:
        raise TopologyFileError(path, "no <graph> element", element="<graphml>", line=root.line)
    keys = _keys(root)
    graph_values = _data(graph, keys, "graph")
    # A network inside one country says so in GeoLocation ("US"); "Europe" maps to nothing.
    graph_country = country_code(graph_values.get("GeoLocation", ""))

    sites: dict[str, Site] = {}
    coords: dict[str, tuple[float, float]] = {}
    for node in graph.find_all("node"):
        nid = node.attrs.get("id", "").strip()
        if not nid:
            raise TopologyFileError(path, "node without an id", element="<node>", field="id",
                                    line=node.line)
        element = f"<node id={nid!r}>"
        if nid in sites:
            raise TopologyFileError(path, "duplicate node id", element=element, field="id",
                                    line=node.line)
        values = _data(node, keys, "node")
        label = values.get("label", "")
        if not label:
            yed = node.iter("NodeLabel")
            label = yed[0].text.strip() if yed else ""
        c = coords_of(values.get("Latitude"), values.get("Longitude"), path, element, node.line)
        if c is not None:
            coords[nid] = c
        sites[nid] = make_site(nid, label, c, _country(values, label, graph_country))
    if not sites:
        raise TopologyFileError(path, "the graph has no nodes", element="<graph>",
                                line=graph.line)

    links: dict[str, Link] = {}
    for index, edge in enumerate(graph.find_all("edge")):
        eid = edge.attrs.get("id", "").strip() or f"e{index}"
        element = f"<edge id={eid!r}>" if edge.attrs.get("id") else f"<edge #{index}>"
        ends: list[Site] = []
        for fld in ("source", "target"):
            ref = edge.attrs.get(fld, "").strip()
            if not ref:
                raise TopologyFileError(path, "missing endpoint", element=element, field=fld,
                                        line=edge.line)
            if ref not in sites:
                raise TopologyFileError(path, f"unknown node {ref!r}", element=element,
                                        field=fld, line=edge.line)
            ends.append(sites[ref])
        if ends[0].site_id == ends[1].site_id:
            continue
        if eid in links:
            raise TopologyFileError(path, "duplicate edge id", element=element, field="id",
                                    line=edge.line)
        values = _data(edge, keys, "edge")
        cap = _capacity(values, path, element, edge.line)
        links[eid] = make_link(eid, ends[0], ends[1], coords, cap, cap)
    name = graph_values.get("Network", "") or graph_values.get("label", "")
    return Topology(sites=sites, links=links, name=name)
