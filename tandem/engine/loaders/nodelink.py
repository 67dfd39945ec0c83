"""networkx node-link JSON (as used for B4 by Teal) → `Topology`.

Conventions (docs/TOPOLOGY.md):
- Edges are read from "links" (or "edges", the newer networkx key).
- A directed graph lists each direction as its own arc: arcs a→b and b→a become one link with
  capacity_ab from the first and capacity_ba from the second (0 for a direction that has no
  arc). Undirected: the same capacity both ways.
- Link id "<a>--<b>" with the endpoints in sorted order; parallel arcs of a multigraph are
  summed (a multigraph's parallel arcs are one pipe to the TE model), so ids stay unique.
- Node fields read when present: "label"/"name", "latitude"/"Latitude"/"lat",
  "longitude"/"Longitude"/"lon", "country"/"Country" (a code or an English name; the only
  source of a country: labels are names). No country, or one the loader does not know:
  unknown ("", read as `UNKNOWN` by rules) and a warning. Edge fields: "capacity" (Mbps;
  default 1000 with a warning naming the link), "latency_ms"/"latency" (ms; default from
  coordinates).
"""

from __future__ import annotations

import json
from typing import Any

from ..jurisdiction import UNKNOWN
from ..topology import Link, Site, Topology
from .common import coords_of, make_link, make_site, to_float
from .countries import country_code
from .defaults import DEFAULT_CAPACITY_MBPS
from .errors import TopologyFileError, Warnings


def _first(d: dict[str, Any], *names: str) -> tuple[str, Any]:
    for n in names:
        if n in d and d[n] is not None:
            return n, d[n]
    return names[0], None


def parse_node_link(text: str, path: str, warnings: list[str] | None = None) -> Topology:
    """Parse node-link JSON; warnings (defaults taken, unknown countries) go to `warnings`."""
    warn = Warnings(path)
    try:
        topo = _parse(text, path, warn)
    finally:
        if warnings is not None:
            warnings.extend(warn.items)
    return topo


def _country(node: dict[str, Any], nid: str, element: str, warn: Warnings) -> str:
    fld, raw = _first(node, "country", "Country")
    code = country_code(str(raw)) if raw not in (None, "") else ""
    if code:
        return code
    why = (f"{raw!r} is no country known to the loader" if raw not in (None, "")
           else "no country field")
    warn.add(f"country unknown ({UNKNOWN}) for site {nid!r}: {why}; no residency or transit "
             "rule admits this site", element=element, field=fld)
    return ""


def _parse(text: str, path: str, warn: Warnings) -> Topology:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TopologyFileError(path, f"not valid JSON: {exc.msg} (column {exc.colno})",
                                element="document", line=exc.lineno) from None
    if not isinstance(doc, dict):
        raise TopologyFileError(path, "expected a JSON object at the top level",
                                element="document")
    nodes = doc.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        raise TopologyFileError(path, "missing or empty node list", element="document",
                                field="nodes")
    edge_key = "links" if "links" in doc else "edges"
    edges = doc.get(edge_key, [])
    if not isinstance(edges, list):
        raise TopologyFileError(path, "expected a list", element="document", field=edge_key)
    directed = bool(doc.get("directed", False))

    sites: dict[str, Site] = {}
    coords: dict[str, tuple[float, float]] = {}
    for i, node in enumerate(nodes):
        element = f"nodes[{i}]"
        if not isinstance(node, dict):
            raise TopologyFileError(path, "expected an object", element=element)
        if "id" not in node or node["id"] is None or isinstance(node["id"], (dict, list)):
            raise TopologyFileError(path, "node without a usable id", element=element,
                                    field="id")
        nid = str(node["id"])
        if nid in sites:
            raise TopologyFileError(path, f"duplicate node id {nid!r}", element=element,
                                    field="id")
        lat_f, lat = _first(node, "latitude", "Latitude", "lat")
        lon_f, lon = _first(node, "longitude", "Longitude", "lon")
        c = coords_of(lat, lon, path, element, None, lat_f, lon_f)
        if c is not None:
            coords[nid] = c
        _, label = _first(node, "label", "name")
        sites[nid] = make_site(nid, str(label or ""), c, _country(node, nid, element, warn))

    # (a, b) sorted → [cap a→b, cap b→a, latency or None]
    pipes: dict[tuple[str, str], list[Any]] = {}
    for i, edge in enumerate(edges):
        element = f"{edge_key}[{i}]"
        if not isinstance(edge, dict):
            raise TopologyFileError(path, "expected an object", element=element)
        ends: list[str] = []
        for fld in ("source", "target"):
            if fld not in edge or edge[fld] is None:
                raise TopologyFileError(path, "missing endpoint", element=element, field=fld)
            ref = str(edge[fld])
            if ref not in sites:
                raise TopologyFileError(path, f"unknown node {ref!r}", element=element,
                                        field=fld)
            ends.append(ref)
        src, dst = ends
        if src == dst:
            continue
        cap = DEFAULT_CAPACITY_MBPS
        if edge.get("capacity") is not None:
            cap = to_float(edge["capacity"], path, element, "capacity", minimum=0.0)
        else:
            warn.add(f"arc {src!r}->{dst!r}: no capacity: default {DEFAULT_CAPACITY_MBPS:g} "
                     "Mbps", element=element, field="capacity")
        lat_name, lat_raw = _first(edge, "latency_ms", "latency")
        latency = (to_float(lat_raw, path, element, lat_name, minimum=0.0)
                   if lat_raw is not None else None)
        key = (src, dst) if src <= dst else (dst, src)
        pipe = pipes.setdefault(key, [0.0, 0.0, None])
        forward = src == key[0]
        if directed:
            pipe[0 if forward else 1] += cap
        else:
            pipe[0] += cap
            pipe[1] += cap
        if latency is not None:
            pipe[2] = latency if pipe[2] is None else min(pipe[2], latency)
    links: dict[str, Link] = {}
    for (a, b), (cab, cba, latency) in sorted(pipes.items()):
        lid = f"{a}--{b}"
        links[lid] = make_link(lid, sites[a], sites[b], coords, cab, cba, latency_ms=latency)
    graph = doc.get("graph")
    name = str(graph.get("name", "")) if isinstance(graph, dict) else ""
    return Topology(sites=sites, links=links, name=name)
