"""`tandem.check`: hand-made plans, each breaking one rule, are caught (and only that rule).

The base plan is valid (`test_the_base_plan_is_valid`); every other test changes one thing and
asserts the exact set of rules reported, so removing a rule's check makes its test fail.

Federation (tests/unit/engine/joint_fixtures.five_sites):

    A(DE) --2ms-- B(DE) --5ms-- C(FR) --40ms, 500/200 Mbps-- E(US, kvm only)
    |  \\__________8ms, 300 Mbps___/ |
    3ms                             3ms
    +------------ D(CH) ------------+
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from joint_fixtures import five_sites

from tandem.check import RULES, check_plan, entry_sites, great_circle_km
from tandem.engine.decision import Decision, Kind, Reservation
from tandem.engine.topology import Link, Site, SiteState, Topology
from tandem.engine.workload import Demand, Location, Rules, VmGroup, WorkloadRequest

TOPO = five_sites()


def req(wid: str = "w", **kw: object) -> WorkloadRequest:
    base: dict[str, object] = dict(
        groups=(VmGroup("web", 2, 4.0, 8.0), VmGroup("db", 1, 8.0, 16.0, hypervisor="kvm")),
        demands=(Demand("app", "web", 100.0, to_group="db", max_latency_ms=10.0),
                 Demand("users", "web", 50.0, to_site="C", diverse=True)),
        rules=Rules.of(["EU"], ["EU", "CH"], (("web", "db"),), 1.0),
        request_id=f"r-{wid}",
    )
    base.update(kw)
    return WorkloadRequest(wid, **base)  # type: ignore[arg-type]


def res(demand: str, sites: str, links: tuple[str, ...], bw: float, wid: str = "w",
        k: int = 0) -> Reservation:
    return Reservation(f"{wid}/{demand}/{k}", wid, demand, tuple(sites), links, (), bw, 0.0)


BASE_PATHS = (res("app", "AB", ("ab",), 100.0),
              res("users", "ABC", ("ab", "bc"), 50.0, k=0),
              res("users", "ADC", ("ad", "dc"), 50.0, k=1))


def dec(wid: str = "w", kind: Kind = Kind.PLACED,
        placements: tuple[tuple[str, str, int], ...] = (("web", "A", 2), ("db", "B", 1)),
        paths: tuple[Reservation, ...] = BASE_PATHS, request_id: str | None = None) -> Decision:
    return Decision(kind, wid, request_id=f"r-{wid}" if request_id is None else request_id,
                    placements=placements, paths=paths)


def rules_of(topo: Topology, reqs: list[WorkloadRequest], decs: list[Decision]) -> set[str]:
    found = check_plan(topo, reqs, decs)
    assert all(v.rule in RULES for v in found)
    return {v.rule for v in found}


def test_the_base_plan_is_valid() -> None:
    assert check_plan(TOPO, [req()], [dec()]) == []


# ------------------------------------------------------------------------------- request
def test_request_missing_or_for_another_workload_or_malformed() -> None:
    assert rules_of(TOPO, [], [dec()]) == {"request"}
    other = replace(req("x"), request_id="r-w")
    assert rules_of(TOPO, [other], [dec()]) == {"request"}
    bad = req(demands=(Demand("app", "web", 100.0, to_group="nope"),))
    found = check_plan(TOPO, [bad], [dec(paths=())])
    assert [v.rule for v in found] == ["request"] and "malformed" in found[0].detail


# ----------------------------------------------------------------------------- placement
def test_placement_missing_group_wrong_count_or_unknown_group() -> None:
    only_web = dec(placements=(("web", "A", 2),), paths=BASE_PATHS[1:])
    assert rules_of(TOPO, [req()], [only_web]) == {"placement"}
    wrong_count = dec(placements=(("web", "A", 1), ("db", "B", 1)))
    assert rules_of(TOPO, [req()], [wrong_count]) == {"placement"}
    extra = dec(placements=(("web", "A", 2), ("db", "B", 1), ("cache", "B", 1)))
    assert rules_of(TOPO, [req()], [extra]) == {"placement"}


# ---------------------------------------------------------------------------------- site
@pytest.mark.parametrize(("state", "expected"), [(SiteState.DRAINING, {"site"}),
                                                  (SiteState.DOWN, {"site", "path", "demand"})])
def test_site_must_exist_and_be_active(state: SiteState, expected: set[str]) -> None:
    nowhere = dec(placements=(("web", "A", 2), ("db", "Z", 1)), paths=BASE_PATHS[1:])
    assert rules_of(TOPO, [req(demands=req().demands[1:])], [nowhere]) == {"site"}
    topo = TOPO.with_site(replace(TOPO.sites["B"], state=state))
    paths = (res("app", "AB", ("ab",), 100.0), res("users", "AC", ("ac",), 50.0),
             res("users", "ADC", ("ad", "dc"), 50.0, k=1))
    # a down B is also no site to walk through: the path A-B is flagged, so app is unserved
    assert rules_of(topo, [req()], [dec(paths=paths)]) == expected


# ---------------------------------------------------------------------------- hypervisor
def test_hypervisor_must_be_offered() -> None:
    topo = TOPO.with_site(replace(TOPO.sites["B"], hypervisors=frozenset({"vsphere"})))
    assert rules_of(topo, [req()], [dec()]) == {"hypervisor"}


# ------------------------------------------------------------------------ vm_jurisdiction
def test_vm_jurisdiction_outside_the_rule() -> None:
    on_d = dec(placements=(("web", "A", 2), ("db", "D", 1)),
               paths=(res("app", "AD", ("ad",), 100.0),) + BASE_PATHS[1:])
    assert rules_of(TOPO, [req()], [on_d]) == {"vm_jurisdiction"}  # CH is not in the EU


@pytest.mark.parametrize("unknown", ["", "??"])
def test_unknown_country_is_never_allowed_even_if_the_rule_names_it(unknown: str) -> None:
    topo = TOPO.with_site(replace(TOPO.sites["B"], jurisdiction=unknown))
    r = req(rules=Rules.of(["EU", unknown or "??"], [], (("web", "db"),), 1.0))
    assert rules_of(topo, [r], [dec()]) == {"vm_jurisdiction"}
    # without any VM rule, an unknown country is no violation
    assert rules_of(topo, [req(rules=Rules())], [dec()]) == set()


# -------------------------------------------------------------------------- anti_affinity
def test_anti_affinity_groups_on_one_site() -> None:
    same = dec(placements=(("web", "B", 2), ("db", "B", 1)),
               paths=(res("users", "BC", ("bc",), 50.0), res("users", "BAC", ("ab", "ac"), 50.0, k=1)))
    assert rules_of(TOPO, [req()], [same]) == {"anti_affinity"}


# ---------------------------------------------------------------------------------- path
@pytest.mark.parametrize("bad", [
    res("app", "AB", ("bc",), 100.0),                # link does not join A and B
    res("app", "AB", ("zz",), 100.0),                # link does not exist
    res("app", "AC", ("ac",), 100.0),                # ends at C, db is on B
    res("app", "ADCB", ("ad", "dc"), 100.0),         # 4 sites, 2 links
    res("app", "ABAB", ("ab", "ab", "ab"), 100.0),   # visits a site twice
    res("app", "AB", ("ab",), 0.0),                  # no bandwidth
])
def test_path_that_is_not_a_walk_between_the_right_sites(bad: Reservation) -> None:
    paths = (bad, res("app", "AB", ("ab",), 100.0, k=1)) + BASE_PATHS[1:]
    assert rules_of(TOPO, [req()], [dec(paths=paths)]) == {"path"}


def test_path_for_an_unknown_demand_or_through_a_down_site_or_when_no_wan_is_needed() -> None:
    ghost = dec(paths=BASE_PATHS + (res("ghost", "AB", ("ab",), 1.0),))
    assert rules_of(TOPO, [req()], [ghost]) == {"path"}
    topo = TOPO.with_site(replace(TOPO.sites["D"], state=SiteState.DOWN))
    # the second users path is no walk any more, so the demand is left without protection
    assert rules_of(topo, [req()], [dec()]) == {"path", "diversity"}
    colocated = req(rules=Rules.of(["EU"], ["EU", "CH"], (), 1.0))
    same_site = dec(placements=(("web", "A", 2), ("db", "A", 1)))  # app stays on A: no path
    assert rules_of(TOPO, [colocated], [same_site]) == {"path"}
    assert rules_of(TOPO, [colocated], [dec(placements=same_site.placements,
                                             paths=BASE_PATHS[1:])]) == set()


# -------------------------------------------------------------------------------- demand
def test_demand_not_fully_reserved_unless_degraded() -> None:
    short = dec(paths=(res("app", "AB", ("ab",), 60.0),) + BASE_PATHS[1:])
    assert rules_of(TOPO, [req()], [short]) == {"demand"}
    split = dec(paths=(res("app", "AB", ("ab",), 60.0), res("app", "ADCB", ("ad", "dc", "bc"), 40.0,
                                                            k=1)) + BASE_PATHS[1:])
    r = req(demands=(replace(req().demands[0], max_latency_ms=0.0),) + req().demands[1:])
    assert rules_of(TOPO, [r], [split]) == set()  # a split that adds up is fine
    assert rules_of(TOPO, [req()], [dec(kind=Kind.DEGRADED, paths=BASE_PATHS[1:])]) == set()


# ----------------------------------------------------------------------------- diversity
@pytest.mark.parametrize("second", [
    res("users", "ABC", ("ab", "bc"), 50.0, k=1),  # the same links as the first path
    res("users", "AC", ("ac",), 25.0, k=1),        # disjoint, but half the bandwidth
])
def test_diverse_demand_needs_two_disjoint_full_paths(second: Reservation) -> None:
    paths = BASE_PATHS[:2] + (second,)
    assert rules_of(TOPO, [req()], [dec(paths=paths)]) == {"diversity"}
    one_path = dec(paths=BASE_PATHS[:2])
    assert rules_of(TOPO, [req()], [one_path]) == {"diversity"}


# ------------------------------------------------------------------------------- latency
def test_latency_bound_on_the_sum_of_link_latencies() -> None:
    slow = dec(paths=(res("app", "ADCB", ("ad", "dc", "bc"), 100.0),) + BASE_PATHS[1:])  # 11 ms
    assert rules_of(TOPO, [req()], [slow]) == {"latency"}
    r = req(demands=(replace(req().demands[0], max_latency_ms=11.0),) + req().demands[1:])
    assert rules_of(TOPO, [r], [slow]) == set()  # exactly at the bound is allowed


# -------------------------------------------------------------------- transit_jurisdiction
def test_transit_through_a_country_outside_the_rule() -> None:
    eu_only = req(rules=Rules.of(["EU"], ["EU"], (("web", "db"),), 1.0))
    found = check_plan(TOPO, [eu_only], [dec()])  # users path A-D-C crosses CH
    assert {v.rule for v in found} == {"transit_jurisdiction"}
    assert "'D' (CH)" in found[0].detail and "'ad'" in found[0].detail


@pytest.mark.parametrize("unknown", ["", "??"])
def test_transit_over_a_link_or_site_of_unknown_country(unknown: str) -> None:
    ad = TOPO.links["ad"]
    topo = TOPO.with_link(replace(ad, jurisdictions=ad.jurisdictions | {unknown}))
    assert rules_of(topo, [req()], [dec()]) == {"transit_jurisdiction"}
    topo = TOPO.with_site(replace(TOPO.sites["D"], jurisdiction=unknown))
    assert rules_of(topo, [req()], [dec()]) == {"transit_jurisdiction"}


# -------------------------------------------------------------------------- cost_ceiling
def test_cost_ceiling_recomputed_from_sites_and_links() -> None:
    # web 2×4×0.05 + db 8×0.04 = 0.72 per hour
    assert rules_of(TOPO, [req(rules=Rules.of(["EU"], ["EU", "CH"], (("web", "db"),), 0.7))],
                    [dec()]) == {"cost_ceiling"}
    priced = TOPO.with_link(replace(TOPO.links["ad"], cost_per_mbps=0.006))  # + 50 × 0.006 = 0.3
    assert rules_of(priced, [req()], [dec()]) == {"cost_ceiling"}
    assert rules_of(TOPO, [req()], [dec()]) == set()


# ------------------------------------------------------------------------------- compute
def big(wid: str, site: str, vcpus: float = 56.0) -> tuple[WorkloadRequest, Decision]:
    r = WorkloadRequest(wid, (VmGroup("g", 1, vcpus, 8.0),), request_id=f"r-{wid}")
    return r, dec(wid, placements=(("g", site, 1),), paths=())


def test_compute_summed_over_workloads_with_releases_and_replacements() -> None:
    r2, d2 = big("big", "A", 57.0)  # A has 64 vCPU; w uses 8 there
    assert rules_of(TOPO, [req(), r2], [dec(), d2]) == {"compute"}
    released = dec(kind=Kind.RELEASED, placements=(), paths=(), request_id="")
    assert rules_of(TOPO, [req(), r2], [dec(), released, d2]) == set()
    r3, d3 = big("big", "A", 56.0)  # exactly full
    assert rules_of(TOPO, [req(), r3], [dec(), d3]) == set()
    moved = dec(placements=(("web", "C", 2), ("db", "B", 1)),
                paths=(res("app", "CB", ("bc",), 100.0), ))
    r_moved = req(demands=req().demands[:1], request_id="r-w2")
    assert rules_of(TOPO, [req(), r_moved, r2],
                    [dec(), replace(moved, request_id="r-w2"), d2]) == set()
    rejected = dec(kind=Kind.REJECTED, placements=(), paths=(), request_id="r-w2")
    assert rules_of(TOPO, [req(), r_moved, r2], [dec(), rejected, d2]) == {"compute"}
    memory = WorkloadRequest("m", (VmGroup("g", 1, 1.0, 300.0),), request_id="r-m")
    assert rules_of(TOPO, [memory], [dec("m", placements=(("g", "C", 1),), paths=())]) == {"compute"}


# ----------------------------------------------------------------------------- bandwidth
def flow(wid: str, mbps: float, sites: str, links: tuple[str, ...]) -> tuple[WorkloadRequest,
                                                                             Decision]:
    a, b = sites[0], sites[-1]
    r = WorkloadRequest(wid, (VmGroup("g"),), (Demand("d", "g", mbps, to_site=b),),
                        request_id=f"r-{wid}")
    return r, dec(wid, placements=(("g", a, 1),), paths=(res("d", sites, links, mbps, wid),))


def test_bandwidth_per_direction_summed_over_workloads() -> None:
    r1, d1 = flow("f1", 200.0, "AC", ("ac",))
    r2, d2 = flow("f2", 150.0, "AC", ("ac",))  # ac: 300 Mbps each way
    r3, d3 = flow("f3", 150.0, "CA", ("ac",))  # the other direction
    found = check_plan(TOPO, [r1, r2, r3], [d1, d2, d3])
    assert [(v.workload_id, v.rule) for v in found] == [("f2", "bandwidth")]
    assert "'ac' from 'A'" in found[0].detail
    # ce: 500 Mbps C→E but only 200 E→C (capacity_from, per direction)
    r4, d4 = flow("f4", 300.0, "CE", ("ce",))
    r5, d5 = flow("f5", 300.0, "EC", ("ce",))
    assert [(v.workload_id, v.rule) for v in check_plan(TOPO, [r4, r5], [d4, d5])] == [
        ("f5", "bandwidth")]
    # a release frees the capacity for the next workload
    rel = Decision(Kind.RELEASED, "f1")
    assert check_plan(TOPO, [r1, r2], [d1, rel, d2]) == []


def test_bandwidth_on_a_link_that_is_down() -> None:
    ln = TOPO.links["ab"]
    topo = TOPO.with_link(replace(ln, admin_up=False))
    assert rules_of(topo, [req()], [dec()]) == {"bandwidth"}


# -------------------------------------------------------------------- user locations
PARIS, FRANKFURT, LONDON = (48.8566, 2.3522), (50.1109, 8.6821), (51.5074, -0.1278)


def geo() -> Topology:
    sites = {s: Site(s, latitude=c[0], longitude=c[1], jurisdiction=j, vcpus=64, memory_gib=64)
             for s, c, j in (("par", PARIS, "FR"), ("fra", FRANKFURT, "DE"), ("lon", LONDON, "GB"))}
    links = {"pf": Link("pf", "par", "fra", 1000, 1000, 2.5, jurisdictions=frozenset({"FR", "DE"})),
             "pl": Link("pl", "par", "lon", 1000, 1000, 1.8, jurisdictions=frozenset({"FR", "GB"}))}
    return Topology(sites, links, "geo")


def test_great_circle_and_entry_site() -> None:
    assert great_circle_km(*PARIS, *LONDON) == pytest.approx(343.56, abs=0.5)
    near_london = entry_sites(geo(), 51.75, -1.26)  # Oxford: ~86 km from London
    assert list(near_london) == ["lon"]
    assert near_london["lon"] == pytest.approx(
        great_circle_km(51.75, -1.26, *LONDON) * 1.5 / 200.0)
    down = geo().with_site(replace(geo().sites["lon"], state=SiteState.DOWN))
    assert list(entry_sites(down, 51.75, -1.26)) == ["par"]


def test_location_demand_enters_at_the_nearest_site_and_counts_access_latency() -> None:
    oxford = Location(51.75, -1.26, "Oxford")
    access = great_circle_km(51.75, -1.26, *LONDON) * 1.5 / 200.0  # ~0.64 ms
    r = WorkloadRequest("u", (VmGroup("g"),),
                        (Demand("d", "g", 10.0, to_location=oxford, max_latency_ms=1.8 + access),),
                        request_id="r-u")
    good = Decision(Kind.PLACED, "u", request_id="r-u", placements=(("g", "par", 1),),
                    paths=(res("d", ("par", "lon"), ("pl",), 10.0, "u"),))
    assert check_plan(geo(), [r], [good]) == []
    wrong_end = replace(good, paths=(res("d", ("par", "fra"), ("pf",), 10.0, "u"),))
    assert rules_of(geo(), [r], [wrong_end]) == {"path", "demand"}  # and so it is unserved
    tight = replace(r, demands=(replace(r.demands[0], max_latency_ms=1.9),))
    assert rules_of(geo(), [tight], [good]) == {"latency"}  # 1.8 ms of fibre + access > 1.9
    on_site = replace(good, placements=(("g", "lon", 1),), paths=())
    assert check_plan(geo(), [tight], [on_site]) == []  # access alone fits
    far = replace(r, demands=(replace(r.demands[0], max_latency_ms=0.5),))
    assert rules_of(geo(), [far], [on_site]) == {"latency"}


def test_the_checker_shares_no_code_with_the_engine_it_checks() -> None:
    """Independence: importing tandem.check loads none of the engine's decision machinery."""
    import subprocess
    import sys

    probe = ("import sys, tandem.check; print(','.join(sorted(m for m in sys.modules "
             "if m.startswith('tandem'))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.strip().split(","))
    assert loaded <= {"tandem", "tandem.check", "tandem.engine", "tandem.engine.decision",
                      "tandem.engine.jurisdiction", "tandem.engine.topology",
                      "tandem.engine.workload"}, loaded
