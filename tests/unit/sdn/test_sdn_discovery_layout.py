"""LLDP frames and link classification; WAN layout planning; site paths (all pure)."""

from __future__ import annotations

import pytest
from sdn_ring import RING

from tandem.engine.topology import Link, Site, Topology
from tandem.sdn import lldp
from tandem.sdn.paths import WanLayout, shortest_link_path, site_hops
from tandem.sdn.wanplan import IFNAMSIZ, plan_wan


def test_lldp_roundtrip_and_garbage():
    frame = lldp.build_lldp("ams", 0x1234, 7)
    assert lldp.parse_lldp(frame) == lldp.Heard("ams", 0x1234, 7)
    for junk in (b"", b"\x00" * 20, frame[:30], bytes(range(256))):
        assert lldp.parse_lldp(junk) is None


@pytest.mark.parametrize("expected,heard,status", [
    (("ber", 2), lldp.Heard("ber", 2, 2), lldp.OK),
    (("ber", 2), lldp.Heard("par", 3, 2), lldp.MISWIRED),
    (("ber", 2), lldp.Heard("ber", 2, 5), lldp.MISWIRED),
    (("ber", 2), None, lldp.MISSING),
    (None, lldp.Heard("ber", 2, 2), lldp.UNDECLARED),
    (None, None, None),
])
def test_classify(expected, heard, status):
    assert lldp.classify(expected, heard) == status


def test_expected_peers_from_declared_links():
    peers = lldp.expected_peers("s2", {l.link_id: (l.site_a, l.port_a, l.site_b, l.port_b)
                                       for l in RING.links.values()})
    assert peers == {2: ("l12", "s1", 2), 3: ("l23", "s3", 2)}


def ring(n: int, ids=None) -> Topology:
    ids = ids or [f"s{i}" for i in range(n)]
    sites = {s: Site(s) for s in ids}
    links = {}
    for i in range(n):
        a, b = ids[i], ids[(i + 1) % n]
        links[f"{a}--{b}"] = Link(f"{a}--{b}", a, b, 100.0, 50.0)
    return Topology(sites, links)


def test_plan_is_deterministic_and_ports_are_per_site_in_link_order():
    t = ring(4)
    p1, p2 = plan_wan(t, scale=0.5), plan_wan(t, scale=0.5)
    assert p1 == p2
    lay = WanLayout.from_json(p1.to_json())
    assert [s.dpid for s in p1.sites] == [1, 2, 3, 4]
    for site in t.sites:
        ports = sorted(lay.port_to_link(site))
        assert ports == [2, 3]  # port 1 is the host
    l = next(x for x in p1.links if x.link_id == "s0--s1")
    assert (l.rate_ab_kbit, l.rate_ba_kbit) == (50_000, 25_000)
    for s in p1.sites:
        for name in (s.bridge, s.netns, s.host_if, s.host_peer):
            assert name.startswith("tdm") and len(name) <= IFNAMSIZ
    for l in p1.links:
        assert l.veth_a.startswith("tdmv") and len(l.veth_b) <= IFNAMSIZ


def test_long_or_odd_site_ids_get_safe_short_names():
    t = ring(3, ids=["a-very-long-site-name", "x y", "ok"])
    p = plan_wan(t)
    names = {s.site_id: s.bridge for s in p.sites}
    assert names["ok"] == "tdm-ok"
    assert all(len(n) <= IFNAMSIZ and " " not in n for n in names.values())
    assert len(set(names.values())) == 3


def test_plan_rejects_what_cannot_be_emulated():
    with pytest.raises(ValueError, match="no sites"):
        plan_wan(Topology({}, {}))
    with pytest.raises(ValueError, match="scale"):
        plan_wan(ring(3), scale=0)
    with pytest.raises(ValueError, match="rounds to 0"):
        plan_wan(ring(3), scale=1e-9)


def test_site_hops_and_shortest_path_avoiding_a_link():
    assert site_hops(RING, ["l12", "l23"], "s1") == [("s1", 1, 2), ("s2", 2, 3), ("s3", 2, 1)]
    assert shortest_link_path(RING, "s1", "s3") == ["l12", "l23"]
    assert shortest_link_path(RING, "s1", "s3", exclude=["l12"]) == ["l41", "l34"]
    assert shortest_link_path(RING, "s1", "s3", exclude=["l12", "l34"]) == []
