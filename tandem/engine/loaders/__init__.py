"""Topology file loaders: Topology Zoo GraphML, SNDlib native, networkx node-link JSON.

`load_topology(path)` picks the format from the extension (.graphml/.xml, .txt/.sndlib,
.json) or, failing that, from the first non-blank character of the content. Reading the given
path is the only I/O; every problem with the file becomes a `TopologyFileError` naming the
file, the element (with its line where the format has lines) and the field. Defaults for
missing fields are in `defaults.py` and docs/TOPOLOGY.md.

`load_topology_with_warnings(path)` also returns what the file left to a default or a choice
(a site of unknown country, a link at the default capacity, a capacity range read at its
lower bound), one located message each: a silent default would decide what a residency rule
admits or what a link is trusted to carry. The core does no I/O, so it returns them; the
caller prints or logs them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..topology import Topology
from ..traffic import Demand
from .errors import TopologyFileError
from .graphml import parse_graphml
from .nodelink import parse_node_link
from .sndlib import parse_sndlib

__all__ = ["TopologyFileError", "load_topology", "load_topology_with_warnings", "load_demands",
           "detect_format"]

_BY_SUFFIX = {".graphml": "graphml", ".xml": "graphml", ".txt": "sndlib",
              ".sndlib": "sndlib", ".json": "nodelink"}


def _read(path: str | Path) -> tuple[str, bytes]:
    name = str(path)
    try:
        return name, Path(path).read_bytes()
    except OSError as exc:
        raise TopologyFileError(name, f"cannot read the file: {exc.strerror or exc}") from None


def _text(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TopologyFileError(name, f"not UTF-8 text (byte {exc.start})",
                                element="document") from None


def detect_format(path: str | Path, data: bytes) -> str:
    """"graphml", "sndlib" or "nodelink" from the suffix, else from the content."""
    fmt = _BY_SUFFIX.get(Path(path).suffix.lower())
    if fmt is not None:
        return fmt
    head = data.lstrip()[:4096]
    if head.startswith(b"<"):
        return "graphml"
    if head.startswith((b"{", b"[")):
        return "nodelink"
    if b"NODES" in head or head.startswith(b"?SNDlib"):
        return "sndlib"
    raise TopologyFileError(
        str(path), "unrecognised format (expected GraphML, SNDlib native or node-link JSON)",
        element="document")


def load_topology_with_warnings(path: str | Path) -> tuple[Topology, list[str]]:
    """Read a topology file of any supported format, with the warnings in file order."""
    name, data = _read(path)
    fmt = detect_format(path, data)
    warnings: list[str] = []
    if fmt == "graphml":
        topo = parse_graphml(data, name, warnings)
    elif fmt == "sndlib":
        topo = parse_sndlib(_text(name, data), name, warnings).topology
    else:
        topo = parse_node_link(_text(name, data), name, warnings)
    if not topo.name:
        topo = replace(topo, name=Path(path).stem)
    return topo, warnings


def load_topology(path: str | Path) -> Topology:
    """Read a topology file of any supported format into an immutable `Topology`."""
    return load_topology_with_warnings(path)[0]


def load_demands(path: str | Path) -> list[Demand]:
    """The demands of an SNDlib file (in the file's unit, Mbps for MBITPERSEC), in file order."""
    name, data = _read(path)
    if detect_format(path, data) != "sndlib":
        raise TopologyFileError(name, "only SNDlib native files carry demands",
                                element="document", field="DEMANDS")
    return parse_sndlib(_text(name, data), name).demands
