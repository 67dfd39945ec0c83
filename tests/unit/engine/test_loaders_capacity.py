"""Capacities written as text (`loaders/capacity.py`) and the warning for every link that
falls back to the default or needed a choice (issue 10: "100-155 Mbit/s" silently 1000)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tandem.engine.loaders import load_topology, load_topology_with_warnings
from tandem.engine.loaders.capacity import capacity_from_label, parse_rate_label
from tandem.engine.loaders.defaults import DEFAULT_CAPACITY_MBPS

DATA = Path(__file__).resolve().parents[3] / "data"


@pytest.mark.parametrize(
    ("label", "mbps"),
    [
        ("100-155 Mbit/s", 100.0),  # a range: its lower bound
        ("1 to 10 Gbps", 1000.0),
        ("2.5/10 Gbps", 2500.0),
        ("2x10G", 20000.0),
        ("2 x 10GE", 20000.0),
        ("4\u00d7STM-64", 4 * 9953.28),
        ("OC-48", 2488.32),
        ("OC48", 2488.32),
        ("OC-192c", 9953.28),
        ("STM-1", 155.52),
        ("1 Gb/s", 1000.0),
        ("10 Gbit/s", 10000.0),
        ("10GE", 10000.0),
        ("10GigE", 10000.0),
        ("100 Mbps", 100.0),
        ("622 Mbit/s", 622.0),
        ("2,5 Gbps", 2500.0),
        ("1,000 Mbps", 1000.0),
        ("DS-3", 44.736),
        ("E1", 2.048),
        ("Gigabit Ethernet", 1000.0),
        ("100 Mbps - 1 Gbps", 100.0),
    ],
)
def test_labels(label: str, mbps: float) -> None:
    assert capacity_from_label(label) == pytest.approx(mbps)


@pytest.mark.parametrize("label", ["Lit Fibre", "GTS CE own Network", "1000", "Route 5 M",
                                   "10 G", "", "Cable1"])
def test_text_without_a_rate_is_not_read(label: str) -> None:
    assert capacity_from_label(label) is None


def test_a_choice_is_explained() -> None:
    got = parse_rate_label("100-155 Mbit/s")
    assert got is not None and "lower bound" in got.note
    got = parse_rate_label("10 Gbps")
    assert got is not None and got.note == ""


UNITS = {"Mbps": 1.0, "Mbit/s": 1.0, "Gbps": 1e3, "Gb/s": 1e3, "G": 1e3, "GE": 1e3,
         "kbps": 1e-3, "Tbps": 1e6}


@settings(max_examples=200, deadline=None)
@given(a=st.integers(1, 999), b=st.integers(1, 999), mult=st.integers(1, 8),
       unit=st.sampled_from(sorted(UNITS)), space=st.booleans())
def test_rates_ranges_and_bundles_round_trip(a: int, b: int, mult: int, unit: str,
                                             space: bool) -> None:
    gap = " " if space and len(unit) > 1 else ""
    f = UNITS[unit]
    assert capacity_from_label(f"{a}{gap}{unit}") == pytest.approx(a * f)
    assert capacity_from_label(f"{a}-{b}{gap}{unit}") == pytest.approx(min(a, b) * f)
    assert capacity_from_label(f"{mult}x{a}{gap}{unit}") == pytest.approx(mult * a * f)


ZOO = """<?xml version="1.0"?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key attr.name="LinkLabel" attr.type="string" for="edge" id="d1" />
  <graph edgedefault="undirected">
    <node id="a" /><node id="b" /><node id="c" /><node id="d" />
    <edge source="a" target="b"><data key="d1">100-155 Mbit/s</data></edge>
    <edge source="b" target="c"><data key="d1">Lit Fibre</data></edge>
    <edge id="x7" source="c" target="d" />
    <edge source="d" target="a"><data key="d1">2x10G</data></edge>
  </graph>
</graphml>
"""


def test_every_default_or_choice_is_a_warning_naming_the_link(tmp_path: Path) -> None:
    p = tmp_path / "t.graphml"
    p.write_text(ZOO)
    topo, warnings = load_topology_with_warnings(p)
    assert topo.links["e0"].capacity_ab_mbps == topo.links["e0"].capacity_ba_mbps == 100.0
    assert topo.links["e1"].capacity_ab_mbps == DEFAULT_CAPACITY_MBPS
    assert topo.links["x7"].capacity_ab_mbps == DEFAULT_CAPACITY_MBPS
    assert topo.links["e3"].capacity_ab_mbps == 20000.0
    cap = [w for w in warnings if "capacity" in w or "Mbps" in w]
    assert len(cap) == 3
    e0, e1, x7 = cap
    assert "line 6" in e0 and "link 'e0' (a-b)" in e0 and "lower bound" in e0
    assert "line 7" in e1 and "link 'e1' (b-c)" in e1 and "'Lit Fibre'" in e1
    assert "default capacity 1000" in e1
    assert "<edge id='x7'>" in x7 and "no label" in x7
    assert load_topology(p) == topo  # load_topology keeps working, same topology


def test_sndlib_link_without_capacity_is_named(tmp_path: Path) -> None:
    p = tmp_path / "t.txt"
    p.write_text("NODES (\n a ( 0 0 )\n b ( 1 1 )\n)\nLINKS (\n l1 ( a b ) 0 0 0 0 ( )\n"
                 " l2 ( a b ) 40 0 0 0 ( )\n)\n")
    topo, warnings = load_topology_with_warnings(p)
    assert topo.links["l1"].capacity_ab_mbps == DEFAULT_CAPACITY_MBPS
    assert topo.links["l2"].capacity_ab_mbps == 40.0
    (w,) = [w for w in warnings if "capacity" in w]
    assert "line 6" in w and "link 'l1'" in w


def test_reference_files_capacity_warnings() -> None:
    """Geant2012: 23 links state no rate (1000 by convention), each named once; 6 say 1 Gbps."""
    topo, warnings = load_topology_with_warnings(DATA / "zoo/Geant2012.graphml")
    cap = [w for w in warnings if "default capacity" in w]
    named = [lid for lid in topo.links if any(f"link {lid!r} " in w for w in cap)]
    assert len(cap) == len(named) == 23
    assert {topo.links[lid].capacity_ab_mbps for lid in named} == {DEFAULT_CAPACITY_MBPS}
    at_1000 = [lid for lid, ln in topo.links.items() if ln.capacity_ab_mbps == 1000.0]
    assert len(at_1000) == 29  # the 23 defaults and the 6 links labelled "1 Gbps"
    _, warnings = load_topology_with_warnings(DATA / "zoo/Abilene.graphml")
    assert warnings == []  # OC-192c everywhere, GeoLocation US: nothing left to a default
