"""SNDlib native format (`NODES`, `LINKS`, `DEMANDS` sections) → `Topology` and demands.

Conventions (docs/TOPOLOGY.md):
- SNDlib links are undirected: each becomes a link with the same capacity in both directions:
  the pre-installed capacity when > 0, else the largest module capacity (one module
  installed), else 1000 with a warning naming the link. Units are those of the file's META
  `unit` (MBITPERSEC: Mbps).
- cost_per_mbps = module cost / module capacity of that largest module (0 without modules).
- Coordinates are given as (longitude latitude) — note the order.
- Country: none in the format; a node id ending in ".xx" where xx is an ISO code or an alias
  (SNDlib's GÉANT: "de1.de"; "uk1.uk" is GB, ".el" would be GR) gives it. Otherwise
  unknown ("", read as `UNKNOWN` by rules) with a warning naming the site ("ny1.ny": NY is no
  country code).
- Demands: one per DEMANDS entry, value in the file's unit; the routing unit and max path
  length are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..topology import Link, Site, Topology
from ..traffic import Demand
from .common import make_link, make_site, to_float
from ..jurisdiction import UNKNOWN, normalise
from .countries import is_code
from .defaults import DEFAULT_CAPACITY_MBPS
from .errors import TopologyFileError, Warnings

_TOKEN = re.compile(r"\(|\)|[^\s()]+")


@dataclass(frozen=True, slots=True)
class _Tok:
    text: str
    line: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        body = line.split("#", 1)[0]
        if body.lstrip().startswith("?"):
            continue
        out.extend(_Tok(m.group(0), lineno) for m in _TOKEN.finditer(body))
    return out


class _Reader:
    def __init__(self, toks: list[_Tok], path: str) -> None:
        self.toks = toks
        self.i = 0
        self.path = path

    def at_end(self) -> bool:
        return self.i >= len(self.toks)

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def line(self) -> int | None:
        t = self.peek()
        return t.line if t else (self.toks[-1].line if self.toks else None)

    def next(self, element: str, fld: str) -> _Tok:
        t = self.peek()
        if t is None:
            raise TopologyFileError(self.path, "unexpected end of file", element=element,
                                    field=fld, line=self.line())
        self.i += 1
        return t

    def expect(self, text: str, element: str, fld: str) -> _Tok:
        t = self.next(element, fld)
        if t.text != text:
            raise TopologyFileError(self.path, f"expected {text!r}, found {t.text!r}",
                                    element=element, field=fld, line=t.line)
        return t

    def word(self, element: str, fld: str) -> _Tok:
        t = self.next(element, fld)
        if t.text in ("(", ")"):
            raise TopologyFileError(self.path, f"expected a value, found {t.text!r}",
                                    element=element, field=fld, line=t.line)
        return t

    def number(self, element: str, fld: str, minimum: float | None = None) -> float:
        t = self.word(element, fld)
        return to_float(t.text, self.path, element, fld, t.line, minimum=minimum)

    def skip_group(self) -> None:
        """Skip a balanced "( ... )" group starting at the current token."""
        self.expect("(", "section", "(")
        depth = 1
        while depth:
            t = self.next("section", ")")
            depth += {"(": 1, ")": -1}.get(t.text, 0)


@dataclass
class SndlibNetwork:
    topology: Topology
    demands: list[Demand]
    unit: str


def _country(node_id: str) -> str:
    """The ISO code of an id's ".xx" suffix (aliases mapped), else "" (unknown)."""
    if "." in node_id:
        suffix = node_id.rsplit(".", 1)[1]
        if is_code(suffix):
            return normalise(suffix)
    return ""


def parse_sndlib(text: str, path: str, warnings: list[str] | None = None) -> SndlibNetwork:
    """Parse SNDlib native text; warnings (defaults taken, unknown countries) go to `warnings`."""
    warn = Warnings(path)
    try:
        net = _parse(text, path, warn)
    finally:
        if warnings is not None:
            warnings.extend(warn.items)
    return net


def _parse(text: str, path: str, warn: Warnings) -> SndlibNetwork:
    r = _Reader(_tokens(text), path)
    sites: dict[str, Site] = {}
    coords: dict[str, tuple[float, float]] = {}
    links: dict[str, Link] = {}
    demands: list[Demand] = []
    unit = "MBITPERSEC"
    seen: set[str] = set()
    while not r.at_end():
        head = r.word("document", "section")
        section = head.text.upper()
        if section in seen:
            raise TopologyFileError(path, f"section {head.text} appears twice",
                                    element=head.text, line=head.line)
        seen.add(section)
        if section == "META":
            r.expect("(", "META", "(")
            while (t := r.peek()) is not None and t.text != ")":
                key = r.word("META", "key")
                r.expect("=", f"META {key.text}", "=")
                vals: list[str] = []
                while (v := r.peek()) is not None and v.text != ")" and (
                    v.line == key.line
                ):
                    vals.append(r.word(f"META {key.text}", key.text).text)
                if key.text.lower() == "unit" and vals:
                    unit = vals[0]
            r.expect(")", "META", ")")
        elif section == "NODES":
            r.expect("(", "NODES", "(")
            while (t := r.peek()) is not None and t.text != ")":
                nid = r.word("NODES", "node_id")
                el = f"node {nid.text!r}"
                if nid.text in sites:
                    raise TopologyFileError(path, "duplicate node id", element=el,
                                            field="node_id", line=nid.line)
                r.expect("(", el, "(")
                lon = r.number(el, "longitude", -180.0)
                lat = r.number(el, "latitude", -90.0)
                if lon > 180 or lat > 90:
                    fld = "longitude" if lon > 180 else "latitude"
                    raise TopologyFileError(path, "coordinate out of range", element=el,
                                            field=fld, line=nid.line)
                r.expect(")", el, ")")
                coords[nid.text] = (lat, lon)
                country = _country(nid.text)
                if not country:
                    warn.add(f"country unknown ({UNKNOWN}): SNDlib names none and the id "
                             "does not end in '.xx' with xx a country code; no residency or "
                             "transit rule admits this site", element=el,
                             field="node_id", line=nid.line)
                sites[nid.text] = make_site(nid.text, nid.text, (lat, lon), country)
            r.expect(")", "NODES", ")")
        elif section == "LINKS":
            r.expect("(", "LINKS", "(")
            while (t := r.peek()) is not None and t.text != ")":
                lid = r.word("LINKS", "link_id")
                el = f"link {lid.text!r}"
                if lid.text in links:
                    raise TopologyFileError(path, "duplicate link id", element=el,
                                            field="link_id", line=lid.line)
                r.expect("(", el, "(")
                ends = [_endpoint(r, sites, el, f, path) for f in ("source", "target")]
                r.expect(")", el, ")")
                pre = r.number(el, "pre_installed_capacity", 0.0)
                for fld in ("pre_installed_capacity_cost", "routing_cost", "setup_cost"):
                    r.number(el, fld)
                r.expect("(", el, "modules")
                modules: list[tuple[float, float]] = []
                while (m := r.peek()) is not None and m.text != ")":
                    mc = r.number(el, "module_capacity", 0.0)
                    modules.append((mc, r.number(el, "module_cost")))
                r.expect(")", el, "modules")
                best = max(modules, default=(0.0, 0.0))
                cap = pre if pre > 0 else (best[0] if best[0] > 0 else DEFAULT_CAPACITY_MBPS)
                cost = best[1] / best[0] if best[0] > 0 else 0.0
                if ends[0].site_id == ends[1].site_id:
                    continue
                if pre <= 0 and best[0] <= 0:
                    warn.add(f"link {lid.text!r} ({ends[0].site_id}-{ends[1].site_id}): no "
                             "pre-installed capacity and no module: default capacity "
                             f"{DEFAULT_CAPACITY_MBPS:g} per direction", element=el,
                             field="pre_installed_capacity", line=lid.line)
                links[lid.text] = make_link(lid.text, ends[0], ends[1], coords, cap, cap,
                                            cost_per_mbps=cost)
            r.expect(")", "LINKS", ")")
        elif section == "DEMANDS":
            r.expect("(", "DEMANDS", "(")
            while (t := r.peek()) is not None and t.text != ")":
                did = r.word("DEMANDS", "demand_id")
                el = f"demand {did.text!r}"
                r.expect("(", el, "(")
                src, dst = (_endpoint(r, sites, el, f, path) for f in ("source", "target"))
                r.expect(")", el, ")")
                r.number(el, "routing_unit")
                value = r.number(el, "demand_value", 0.0)
                r.word(el, "max_path_length")
                demands.append(Demand(src.site_id, dst.site_id, value, did.text))
            r.expect(")", "DEMANDS", ")")
        else:
            if r.peek() is None or r.peek().text != "(":  # type: ignore[union-attr]
                raise TopologyFileError(path, f"unknown section {head.text!r}",
                                        element="document", field="section", line=head.line)
            r.skip_group()
    if "NODES" not in seen or "LINKS" not in seen:
        missing = "NODES" if "NODES" not in seen else "LINKS"
        raise TopologyFileError(path, f"no {missing} section", element="document",
                                field=missing, line=None)
    if not sites:
        raise TopologyFileError(path, "the NODES section is empty", element="NODES")
    return SndlibNetwork(Topology(sites=sites, links=links), demands, unit)


def _endpoint(r: _Reader, sites: dict[str, Site], el: str, fld: str, path: str) -> Site:
    t = r.word(el, fld)
    site = sites.get(t.text)
    if site is None:
        raise TopologyFileError(path, f"unknown node {t.text!r}", element=el, field=fld,
                                line=t.line)
    return site
