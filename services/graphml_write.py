"""Write a `Topology` as Topology Zoo-style GraphML that `load_topology` reads back.

The pure core builds topologies (`tandem.engine.topogen`); writing a file is I/O, so it lives
here. The file carries exactly what the Zoo format and our GraphML loader carry, with the
same field names as the Zoo toolset files in data/zoo/ (docs/TOPOLOGY.md):

- graph: `Network` (the topology's name). No `GeoLocation`: the loader would use it as the
  country of every node without one, and a site with no country must stay unknown.
- node: id, `label` (the site's name), `Latitude`, `Longitude`, `Country` (ISO code; left out
  for a site whose country is unknown).
- edge: id, source, target, `LinkSpeedRaw` (bit/s, the field the loader reads first; left
  out when bit/s ÷ 1e6 would not give the Mbps value back exactly), `LinkSpeed` +
  `LinkSpeedUnits` (exact) and `LinkLabel` ("10 Gbps") for human readers and other tools.

Everything else (site compute and cost, link cost, latency) is *derived* by the loader
(defaults, great-circle latency). A link whose two directions differ in capacity cannot be
written: GraphML edges are read as symmetric, so the file would silently change the value.
Floats are written with `repr`, which round-trips exactly. Output is deterministic (sorted
ids, no timestamp), so the same topology always gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from tandem.engine.topology import Topology

_KEYS = (
    ("d0", "graph", "Network", "string"),
    ("d1", "node", "label", "string"),
    ("d2", "node", "Country", "string"),
    ("d3", "node", "Latitude", "double"),
    ("d4", "node", "Longitude", "double"),
    ("d5", "edge", "LinkSpeedRaw", "double"),
    ("d6", "edge", "LinkSpeed", "string"),
    ("d7", "edge", "LinkSpeedUnits", "string"),
    ("d8", "edge", "LinkLabel", "string"),
)


def _speed(mbps: float) -> tuple[str, str, str]:
    """(LinkSpeed, LinkSpeedUnits, LinkLabel) as Topology Zoo writes them: "10", "G", "10 Gbps"."""
    for unit, per in (("T", 1e6), ("G", 1e3), ("M", 1.0)):
        if mbps >= per and (mbps / per).is_integer():
            value = f"{int(mbps / per)}"
            return value, unit, f"{value} {unit}bps"
    return repr(mbps), "M", f"{mbps:g} Mbps"


def graphml_text(topology: Topology) -> str:
    """The GraphML document for `topology`; ValueError if a link is asymmetric."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">']
    for kid, dom, name, typ in _KEYS:
        out.append(f'  <key attr.name="{name}" attr.type="{typ}" for="{dom}" id="{kid}"/>')
    out.append('  <graph edgedefault="undirected" id="G">')
    out.append(f'    <data key="d0">{escape(topology.name)}</data>')
    for sid, s in topology.sites.items():
        out.append(f"    <node id={quoteattr(sid)}>")
        out.append(f'      <data key="d1">{escape(s.name or sid)}</data>')
        if s.jurisdiction:
            out.append(f'      <data key="d2">{escape(s.jurisdiction)}</data>')
        out.append(f'      <data key="d3">{s.latitude!r}</data>')
        out.append(f'      <data key="d4">{s.longitude!r}</data>')
        out.append("    </node>")
    for lid, ln in topology.links.items():
        if ln.capacity_ab_mbps != ln.capacity_ba_mbps:
            raise ValueError(f"link {lid!r}: capacity {ln.capacity_ab_mbps:g} Mbps a→b but "
                             f"{ln.capacity_ba_mbps:g} b→a; GraphML edges carry one capacity")
        speed, unit, label = _speed(ln.capacity_ab_mbps)
        out.append(f"    <edge id={quoteattr(lid)} source={quoteattr(ln.a)} "
                   f"target={quoteattr(ln.b)}>")
        raw = ln.capacity_ab_mbps * 1e6
        if raw / 1e6 == ln.capacity_ab_mbps:  # else LinkSpeed (exact) is what the loader reads
            out.append(f'      <data key="d5">{raw!r}</data>')
        out.append(f'      <data key="d6">{speed}</data>')
        out.append(f'      <data key="d7">{unit}</data>')
        out.append(f'      <data key="d8">{escape(label)}</data>')
        out.append("    </edge>")
    out.append("  </graph>")
    out.append("</graphml>")
    return "\n".join(out) + "\n"


def write_graphml(topology: Topology, path: str | Path) -> None:
    """Write `topology` to `path` (UTF-8, overwriting)."""
    Path(path).write_text(graphml_text(topology), encoding="utf-8")
