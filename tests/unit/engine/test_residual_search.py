"""No feasible order is refused for want of a path (issue 10).

Property: on small random federations (≤ 8 sites, parallel links, one-way and dead directions,
unknown countries, random residual capacity) a single-demand order is refused for bandwidth,
latency or transit only when an exhaustive search over *all* simple paths finds no admissible
path with the bandwidth, and the refusal names the constraint that really failed. Every path
the engine reserves is re-checked here from the `Topology` alone: contiguity, latency sum,
countries crossed, and the capacity left on each direction.
"""

from __future__ import annotations

from pathlib import Path as FsPath

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tandem.engine.decide import decide
from tandem.engine.decision import Decision
from tandem.engine.jurisdiction import GROUPS
from tandem.engine.loaders import load_topology
from tandem.engine.state import State
from tandem.engine.topology import Link, Site, Topology
from tandem.engine.workload import Demand, Location, Rules, VmGroup, WorkloadRequest

DATA = FsPath(__file__).resolve().parents[3] / "data"
COUNTRIES = ["DE", "FR", "CH", "US", "", "??"]
RULED = ["DE", "FR", "CH", "US", "EU"]
ROUTING = ("bandwidth", "latency", "transit_jurisdiction")


def _canon(c: str) -> str | None:
    c = c.strip().upper()
    return None if c in ("", "??") else c


@st.composite
def instances(draw: st.DrawFn) -> tuple[Topology, tuple[float, ...], WorkloadRequest]:
    n = draw(st.integers(2, 8))
    names = [f"s{i}" for i in range(n)]
    src, dst = names[0], names[draw(st.integers(1, n - 1))]
    sites = {s: Site(s, jurisdiction=draw(st.sampled_from(COUNTRIES)),
                     vcpus=64.0 if s == src else 0.0, memory_gib=64.0 if s == src else 0.0)
             for s in names}
    links = {}
    for k in range(draw(st.integers(1, 14))):
        a, b = draw(st.sampled_from(names)), draw(st.sampled_from(names))
        if a == b:
            continue
        own = draw(st.sets(st.sampled_from(COUNTRIES), max_size=2))
        links[f"l{k}"] = Link(f"l{k}", a, b, draw(st.sampled_from([0.0, 100.0, 400.0, 1000.0])),
                              draw(st.sampled_from([0.0, 100.0, 400.0, 1000.0])),
                              float(draw(st.integers(1, 9))), jurisdictions=frozenset(own))
    topo = Topology(sites, links, "rand")
    # Capacity already reserved on each direction (0..capacity), in the engine's order.
    used = []
    for ln in topo.links.values():
        for frm in (ln.a, ln.b):
            cap = ln.capacity_from(frm)
            used.append(cap * draw(st.sampled_from([0.0, 0.0, 0.5, 0.9, 1.0])))
    bw = float(draw(st.sampled_from([50, 100, 300, 600])))
    lat = float(draw(st.sampled_from([0, 0, 4, 8, 15])))
    transit = draw(st.one_of(st.just([]), st.lists(st.sampled_from(RULED), min_size=1,
                                                    max_size=3)))
    req = WorkloadRequest("w", (VmGroup("g", 1, 1.0, 1.0),),
                          (Demand("d", "g", bw, to_site=dst, max_latency_ms=lat),),
                          Rules.of(transit_jurisdictions=transit))
    return topo, tuple(used), req


def _allowed(rule: list[str] | frozenset[str]) -> set[str]:
    out: set[str] = set()
    for item in rule:
        out |= set(GROUPS.get(item, frozenset({item})))
    return out


def _all_paths(topo: Topology, src: str, dst: str) -> list[list[tuple[str, str]]]:
    """Every simple path as [(link id, site left)], over both directions of every link."""
    g = nx.MultiDiGraph()
    g.add_nodes_from(topo.sites)
    for lid, ln in topo.links.items():
        g.add_edge(ln.a, ln.b, key=(lid, ln.a))
        g.add_edge(ln.b, ln.a, key=(lid, ln.b))
    return [[k for _, _, k in p] for p in nx.all_simple_edge_paths(g, src, dst)]


def _judge(topo: Topology, used: dict[tuple[str, str], float], hops: list[tuple[str, str]],
           rule: set[str] | None, bound: float, bw: float) -> tuple[bool, bool, bool]:
    """(transit ok, latency ok, bandwidth ok) of one path, from the Topology alone."""
    crossed: list[str | None] = []
    lat, room = 0.0, float("inf")
    for lid, frm in hops:
        ln = topo.links[lid]
        crossed += [_canon(c) for c in ln.jurisdictions]
        crossed += [_canon(topo.sites[ln.a].jurisdiction), _canon(topo.sites[ln.b].jurisdiction)]
        lat += ln.latency_ms
        room = min(room, ln.capacity_from(frm) - used[lid, frm])
    transit_ok = rule is None or all(c is not None and c in rule for c in crossed)
    return transit_ok, bound <= 0 or lat <= bound + 1e-9, room >= bw - 1e-6


def _recheck(topo: Topology, used: dict[tuple[str, str], float], dec: Decision,
             rule: set[str] | None, bound: float, src: str, dst: str) -> None:
    extra: dict[tuple[str, str], float] = {}
    total = 0.0
    for r in dec.paths:
        assert r.sites[0] == src and r.sites[-1] == dst
        assert len(set(r.sites)) == len(r.sites), "a reserved path repeats a site"
        hops = []
        for i, lid in enumerate(r.links):
            ln = topo.links[lid]
            assert {ln.a, ln.b} == {r.sites[i], r.sites[i + 1]}
            hops.append((lid, r.sites[i]))
        transit_ok, lat_ok, _ = _judge(topo, used, hops, rule, bound, 0.0)
        assert transit_ok, f"{r.sites} crosses a country the rule refuses"
        assert lat_ok, f"{r.sites} exceeds {bound} ms"
        assert abs(sum(topo.links[lid].latency_ms for lid in r.links) - r.latency_ms) < 1e-6
        for h in hops:
            extra[h] = extra.get(h, 0.0) + r.bandwidth_mbps
        total += r.bandwidth_mbps
    for (lid, frm), x in extra.items():
        assert x <= topo.links[lid].capacity_from(frm) - used[lid, frm] + 1e-6, (lid, frm)
    assert abs(total - dec.request.demands[0].bandwidth_mbps) < 1e-6  # type: ignore[union-attr]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_refused_only_when_no_simple_path_is_admissible(
    inst: tuple[Topology, tuple[float, ...], WorkloadRequest],
) -> None:
    topo, used_t, req = inst
    state = State.empty(topo)
    state = State(state.net, used_t, state.site_used, state.workloads)
    d = req.demands[0]
    src, dst = "s0", d.to_site
    rule = _allowed(sorted(req.rules.transit_jurisdictions)) if req.rules.transit_jurisdictions \
        else None
    used = {(lid, frm): used_t[2 * i + (0 if frm == ln.a else 1)]
            for i, (lid, ln) in enumerate(topo.links.items()) for frm in (ln.a, ln.b)}
    judged = [_judge(topo, used, p, rule, d.max_latency_ms, d.bandwidth_mbps)
              for p in _all_paths(topo, src, dst)]
    admissible = any(all(j) for j in judged)
    compliant = any(j[0] for j in judged)
    in_bound = any(j[0] and j[1] for j in judged)

    dec = decide(state, req)
    if dec.admitted:
        _recheck(topo, used, dec, rule, d.max_latency_ms, src, dst)
        return
    assert dec.rejection is not None
    c = dec.rejection.constraint
    assert c in ROUTING, dec.rejection
    assert not admissible, f"refused ({dec.rejection}) though an admissible path exists"
    if c == "transit_jurisdiction":
        assert rule is not None and not compliant
    elif c == "latency":
        assert compliant and not in_bound
    else:  # bandwidth: some path meets the rules, or no path exists at all
        assert in_bound or not judged


def test_geant_detour_with_room_is_found_when_every_candidate_is_full() -> None:
    """The checker's case: every candidate n26→n9 full, a 7-hop detour with room."""
    topo = load_topology(DATA / "zoo/Geant2012.graphml")
    for sid in ("n26", "n9"):
        assert sid in topo.sites
    empty = State.empty(topo)
    net = empty.net
    s, t = net.index["n26"], net.index["n9"]
    detour = ["n26", "n23", "n30", "n33", "n24", "n16", "n9"]
    keep = set()
    for a, b in zip(detour, detour[1:]):
        keep |= {2 * i + (0 if ln.a == a else 1) for i, ln in enumerate(net.links)
                 if {ln.a, ln.b} == {a, b}}
    full = {e for p in net.paths(s, t) for e in p.dirs} - keep
    used = tuple(c if e in full else 0.0 for e, c in enumerate(net.cap))
    st_full = State(net, used, empty.site_used, empty.workloads)
    res = st_full.residual()
    assert all(min(res[e] for e in p.dirs) <= 0 for p in net.paths(s, t)), \
        "precondition: every candidate is full"
    sites = {k: v if k == "n26" else Site(k, jurisdiction=v.jurisdiction, latitude=v.latitude,
                                           longitude=v.longitude) for k, v in topo.sites.items()}
    st_full = State(st_full.net.with_capacity(Topology(sites, topo.links, topo.name)), used,
                    empty.site_used, empty.workloads)
    req = WorkloadRequest("w", (VmGroup("g"),), (Demand("d", "g", 100.0, to_site="n9"),))
    dec = decide(st_full, req)
    assert dec.admitted, dec.rejection
    for r in dec.paths:
        assert all(res[e] >= r.bandwidth_mbps - 1e-6 for e in r.dirs)
        assert r.sites[0] == "n26" and r.sites[-1] == "n9"


def _two_routes() -> Topology:
    """S has compute; T is 2 ms away over a 100 Mbps link, or 12 ms over 1 Gbps links."""
    sites = {"S": Site("S", jurisdiction="DE", vcpus=8, memory_gib=8),
             "M": Site("M", jurisdiction="DE"), "T": Site("T", jurisdiction="DE")}
    links = {"st": Link("st", "S", "T", 100, 100, 2.0),
             "sm": Link("sm", "S", "M", 1000, 1000, 6.0), "mt": Link("mt", "M", "T", 1000, 1000, 6.0)}
    return Topology(sites, links, "two")


@pytest.mark.parametrize(("bound", "bw", "constraint"), [
    (5.0, 300.0, "bandwidth"),  # a path within 5 ms exists (st) but has 100 Mbps: bandwidth
    (1.0, 50.0, "latency"),     # no path at all within 1 ms
    (20.0, 300.0, None),        # the slow route has room: admitted
])
def test_rejection_names_the_constraint_that_failed(bound: float, bw: float,
                                                    constraint: str | None) -> None:
    req = WorkloadRequest("w", (VmGroup("g"),),
                          (Demand("d", "g", bw, to_site="T", max_latency_ms=bound),))
    dec = decide(State.empty(_two_routes()), req)
    if constraint is None:
        assert dec.admitted and [r.sites for r in dec.paths] == [("S", "M", "T")]
    else:
        assert dec.rejection is not None and dec.rejection.constraint == constraint
        assert "'d'" in dec.rejection.detail


def test_group_rejection_prefers_the_site_that_came_closest() -> None:
    """Two candidate sites: one too far (latency), one near but without room (bandwidth).
    The order failed for bandwidth: with room it would have been admitted."""
    topo = _two_routes().with_site(Site("F", jurisdiction="DE", vcpus=8, memory_gib=8))
    topo = topo.with_link(Link("ft", "F", "T", 1000, 1000, 50.0))
    req = WorkloadRequest("w", (VmGroup("g"),),
                          (Demand("d", "g", 300.0, to_site="T", max_latency_ms=5.0),),
                          Rules.of(vm_jurisdictions=["DE"]))
    dec = decide(State.empty(topo), req)
    assert dec.rejection is not None and dec.rejection.constraint == "bandwidth"
    assert "1 latency" in dec.rejection.detail


def test_user_location_without_coordinates_is_refused_not_placed_at_zero() -> None:
    topo = _two_routes()  # no site has coordinates
    req = WorkloadRequest("w", (VmGroup("g"),), (Demand(
        "u", "g", 10.0, to_location=Location(48.86, 2.35, "Paris")),))
    dec = decide(State.empty(topo), req)
    assert dec.rejection is not None and dec.rejection.constraint == "location"
    assert "'u'" in dec.rejection.detail and "Paris" in dec.rejection.detail
    assert "coordinates" in dec.rejection.detail
    nowhere = WorkloadRequest("w", (VmGroup("g"),), (Demand(
        "u", "g", 10.0, to_location=Location(0.0, 0.0, "")),))
    with_coords = topo.with_site(Site("T", jurisdiction="DE", latitude=48.0, longitude=2.0))
    dec = decide(State.empty(with_coords), nowhere)
    assert dec.rejection is not None and dec.rejection.constraint == "location"
    dec = decide(State.empty(with_coords), req)
    assert dec.admitted and dec.paths[0].sites[-1] == "T"  # the only site with coordinates
