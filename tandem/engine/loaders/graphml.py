"""Topology Zoo GraphML (both the toolset's files and the yEd sources) → `Topology`.

Conventions (docs/TOPOLOGY.md):
- Site id = the GraphML node id (unique by the GraphML spec); name = the `label` data, or the
  yEd `NodeLabel` text, or the id.
- Every edge is a bidirectional link with the same capacity in both directions, whatever the
  graph's `edgedefault`: Topology Zoo marks its graphs "directed" but lists each cable once.
- Parallel edges stay distinct links (id = the edge's `id` attribute, else "e<index>"), so link
  counts match the file; self-loops carry no traffic and are dropped.
- Capacity (Mbps): `LinkSpeedRaw` (bit/s), else `LinkSpeed` × `LinkSpeedUnits`, else a
  `capacity` data field, else a rate stated in `LinkLabel`/`label` (`capacity.py`: "10 Gbps",
  "OC-192c", "2x10GE"; a range gives its lower bound, with a warning), else 1000 with a
  warning naming the link.
- Country, from fields that mean a country only: `Country`, `geocode_country`, then the
  places `geocode_name` ("City, Country" or a country), `geocode_append` and
  `geocode_extent` (the Zoo toolset's hints steering its geocoder to a country), then the
  node's label *only when every node of the graph is labelled with a country code* (GÉANT's
  yEd source labels its 40 PoPs "IE", "UK", ...; a single label such as "Bo", a Norwegian
  town, is a name, not Bolivia), then the graph's `GeoLocation` when it names one country
  (Abilene: "US"). A field value that is no known country is skipped with a warning; a label
  contradicting a field is overruled by the field, with a warning (GÉANT's "SL" is geocoded
  Ljubljana, Slovenia: SI). No source: unknown ("", read as `UNKNOWN` by rules) and a
  warning.
- Latency: great-circle at fibre speed between the nodes' coordinates; without coordinates,
  between the capitals of the endpoints' countries when both are known and differ; else 1 ms.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..jurisdiction import UNKNOWN
from ..topology import Link, Site, Topology
from . import _xml
from .capacity import parse_rate_label, unit_factor_mbps
from .common import coords_of, make_link, make_site, to_float
from .countries import country_code, country_from_place, is_code
from .defaults import DEFAULT_CAPACITY_MBPS
from .errors import TopologyFileError, Warnings


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


def _capacity(values: dict[str, str], path: str, element: str, line: int, link: str,
              warn: Warnings) -> float:
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
    tried: list[str] = []
    for fld in ("LinkLabel", "label"):
        text = values.get(fld, "")
        if not text:
            continue
        got = parse_rate_label(text)
        if got is not None:
            if got.note:
                warn.add(f"{link}: label {text!r} is {got.note}: {got.mbps:g} Mbps",
                         element=element, field=fld, line=line)
            return got.mbps
        tried.append(f"{fld} {text!r}")
    why = ("; ".join(tried) + " states no rate") if tried else "no label"
    warn.add(f"{link}: no LinkSpeedRaw, LinkSpeed or capacity, and {why}: default "
             f"capacity {DEFAULT_CAPACITY_MBPS:g} Mbps per direction",
             element=element, field="LinkLabel" if tried else "", line=line)
    return DEFAULT_CAPACITY_MBPS


@dataclass(frozen=True, slots=True)
class _Node:
    nid: str
    element: str
    line: int
    values: dict[str, str]
    label: str


_COUNTRY_FIELDS = ("Country", "geocode_country")
_PLACE_FIELDS = ("geocode_name", "geocode_append", "geocode_extent")


def _country(node: _Node, labels_are_codes: bool, graph_country: str, warn: Warnings) -> str:
    """The node's ISO code from fields that mean a country (module docstring), or "" (unknown)."""
    found, source = "", ""
    for fld in _COUNTRY_FIELDS:
        raw = node.values.get(fld, "")
        if raw and not found:
            found, source = country_code(raw), fld
            if not found:
                warn.add(f"{raw!r} is no country known to the loader; field ignored",
                         element=node.element, field=fld, line=node.line)
    for fld in _PLACE_FIELDS:
        raw = node.values.get(fld, "")
        if raw and not found:
            found, source = country_from_place(raw), fld
    if labels_are_codes:
        code = country_code(node.label)
        if not found:
            found, source = code, "label"
        elif code != found:
            warn.add(f"label {node.label!r} reads as {code} but field {source!r} gives "
                     f"{found}; using {found}", element=node.element, line=node.line)
    if not found and graph_country:
        found = graph_country
    if not found:
        warn.add(f"country unknown ({UNKNOWN}) for {(node.label or node.nid)!r}: no Country, "
                 "geocode_* or graph GeoLocation field names one; no residency or transit "
                 "rule admits this site", element=node.element, line=node.line)
    return found


def parse_graphml(data: bytes, path: str, warnings: list[str] | None = None) -> Topology:
    """Parse GraphML bytes; warnings (defaults taken, unknown countries) go to `warnings`."""
    warn = Warnings(path)
    try:
        topo = _parse(data, path, warn)
    finally:
        if warnings is not None:
            warnings.extend(warn.items)
    return topo


def _parse(data: bytes, path: str, warn: Warnings) -> Topology:
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

    nodes: dict[str, _Node] = {}
    coords: dict[str, tuple[float, float]] = {}
    for node in graph.find_all("node"):
        nid = node.attrs.get("id", "").strip()
        if not nid:
            raise TopologyFileError(path, "node without an id", element="<node>", field="id",
                                    line=node.line)
        element = f"<node id={nid!r}>"
        if nid in nodes:
            raise TopologyFileError(path, "duplicate node id", element=element, field="id",
                                    line=node.line)
        values = _data(node, keys, "node")
        label = values.get("label", "")
        if not label:
            label = next((t for t in (y.text.strip() for y in node.iter("NodeLabel")) if t), "")
        c = coords_of(values.get("Latitude"), values.get("Longitude"), path, element, node.line)
        if c is not None:
            coords[nid] = c
        nodes[nid] = _Node(nid, element, node.line, values, label)
    if not nodes:
        raise TopologyFileError(path, "the graph has no nodes", element="<graph>",
                                line=graph.line)
    # Labels are names, unless the whole graph is labelled by country (GÉANT's yEd source).
    labels_are_codes = all(is_code(n.label) for n in nodes.values())
    sites: dict[str, Site] = {
        nid: make_site(nid, n.label, coords.get(nid),
                       _country(n, labels_are_codes, graph_country, warn))
        for nid, n in nodes.items()
    }

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
        who = f"link {eid!r} ({ends[0].site_id}-{ends[1].site_id})"
        cap = _capacity(values, path, element, edge.line, who, warn)
        links[eid] = make_link(eid, ends[0], ends[1], coords, cap, cap)
    name = graph_values.get("Network", "") or graph_values.get("label", "")
    return Topology(sites=sites, links=links, name=name)
