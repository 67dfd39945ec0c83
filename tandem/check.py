"""An independent feasibility check of a plan: does every admitted decision obey every rule?

The engine's own guarantees are only as good as its code; a plan (the decisions of `tandem
plan`, of the stream processors, or written by hand) deserves a second opinion that does not
share that code. `check_plan(topology, requests, decisions)` re-derives everything from the
topology and the requests alone, with its own arithmetic: it imports none of the engine's
network, routing, search or state modules, only the data classes, `workload.validate` and the
legal groupings. It does not trust anything a decision *reports* (cost, latency, direction
indices): it recomputes.

Decisions are folded in order, as the engine's state is: an admitted kind (placed, rerouted,
migrated, degraded, ...) replaces the workload's previous placement, `released`/`preempted`
remove it, `rejected` changes nothing. Per admitted decision:

| rule | what is checked |
|---|---|
| `request` | the decision answers a known, well-formed request for the same workload |
| `placement` | every group is placed exactly once, with its count; no unknown group |
| `site` | a placement's site exists and is active |
| `hypervisor` | the site offers the group's hypervisor |
| `vm_jurisdiction` | the site's country is allowed by the VM rule |
| `anti_affinity` | groups of one anti-affinity set are on pairwise different sites |
| `path` | a reservation is a loop-free walk of existing links from the demand's group site to its target (the target group's site, the fixed site, or the site nearest the user location), through no down site, with a positive bandwidth, for a known demand |
| `demand` | a demand between two different sites reserves its whole bandwidth (not for `degraded`) |
| `diversity` | a diverse demand has two link-disjoint paths each with the full bandwidth |
| `latency` | Σ link latency (+ access latency to a user location) ≤ the demand's bound |
| `transit_jurisdiction` | every site on a path and every country of every link crossed (its own and both endpoints') is allowed by the transit rule |
| `cost_ceiling` | Σ vCPU × site cost + Σ Mbps × Σ link cost per Mbps ≤ the ceiling |
| `compute` | vCPU, memory and storage used per site ≤ the site's capacity, after this decision |
| `bandwidth` | Mbps reserved per link direction ≤ `Link.capacity_from(site)`, after this decision |

Unknown countries ("" or "??") are never allowed by a rule that names countries. A user
location enters the WAN at the nearest non-down site (great circle on a 6371 km sphere, ties
within 1 m accepted); access latency = distance × 1.5 ÷ 200 km/ms (docs/ENGINE.md). Sums are
compared with a tolerance of 1e-6 per contributing item (the engine's own epsilon) plus 1e-9
relative, so float rounding is not a violation but any real excess is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .engine.decision import Decision, Kind, Reservation
from .engine.jurisdiction import expand, normalise
from .engine.topology import SiteState, Topology
from .engine.workload import Demand, WorkloadRequest, validate

RULES = ("request", "placement", "site", "hypervisor", "vm_jurisdiction", "anti_affinity", "path",
         "demand", "diversity", "latency", "transit_jurisdiction", "cost_ceiling", "compute",
         "bandwidth")
UNKNOWN_COUNTRIES = frozenset({"", "??"})
EARTH_RADIUS_KM = 6371.0
ROUTE_FACTOR = 1.5
KM_PER_MS = 200.0
TOL_ITEM = 1e-6
TOL_REL = 1e-9
_TIE_KM = 1e-3


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: the decision's position in the plan (0-based), ids, rule and detail."""

    index: int
    workload_id: str
    request_id: str
    rule: str
    detail: str


def check_plan(
    topology: Topology,
    requests: Iterable[WorkloadRequest],
    decisions: Sequence[Decision],
    at: float | None = None,
) -> list[Violation]:
    """Every violation of the plan, in decision order (see the module doc for the rules)."""
    pending: dict[str, list[WorkloadRequest]] = {}
    latest: dict[str, WorkloadRequest] = {}
    for r in requests:
        pending.setdefault(r.request_id, []).append(r)
        latest[r.workload_id] = r
    ledger = _Ledger(topology, at)
    admitted: dict[str, tuple[Decision, WorkloadRequest]] = {}
    out: list[Violation] = []
    for i, dec in enumerate(decisions):
        def flag(rule: str, detail: str, i: int = i, dec: Decision = dec) -> None:
            out.append(Violation(i, dec.workload_id, dec.request_id, rule, detail))

        queue = pending.get(dec.request_id) if dec.request_id else None
        req = queue.pop(0) if queue else None
        if dec.kind is Kind.REJECTED:
            continue
        if dec.kind in (Kind.RELEASED, Kind.PREEMPTED):
            gone = admitted.pop(dec.workload_id, None)
            if gone is not None:
                ledger.remove(*gone)
            continue
        if req is None:
            now = admitted.get(dec.workload_id)
            req = now[1] if now is not None else latest.get(dec.workload_id)
        if req is None:
            flag("request", f"no request {dec.request_id!r} for workload {dec.workload_id!r}")
            continue
        if req.workload_id != dec.workload_id:
            flag("request", f"request {req.request_id!r} is for workload {req.workload_id!r}")
            continue
        why = validate(req, topology)
        if why is not None:
            flag("request", f"admitted a malformed request: {why}")
            continue
        for rule, detail in _static(topology, req, dec):
            flag(rule, detail)
        old = admitted.pop(dec.workload_id, None)
        if old is not None:
            ledger.remove(*old)
        admitted[dec.workload_id] = (dec, req)
        for rule, detail in ledger.add(dec, req):
            flag(rule, detail)
    return out


# ----------------------------------------------------------------------------- geography
def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance on a sphere of radius `EARTH_RADIUS_KM` (the checker's own copy)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((phi2 - phi1) / 2) ** 2
         + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def entry_sites(topology: Topology, lat: float, lon: float) -> dict[str, float]:
    """Sites where traffic to a user location may enter the WAN → access latency (ms)."""
    km = {sid: great_circle_km(lat, lon, s.latitude, s.longitude)
          for sid, s in topology.sites.items() if s.state is not SiteState.DOWN}
    if not km:
        return {}
    best = min(km.values())
    return {sid: d * ROUTE_FACTOR / KM_PER_MS for sid, d in km.items() if d <= best + _TIE_KM}


def allowed(rule: frozenset[str], country: str) -> bool:
    """A country passes a non-empty rule only if known and listed (groupings expanded)."""
    c = normalise(country)
    return c not in UNKNOWN_COUNTRIES and c in expand(rule)


def _within(value: float, bound: float, items: int = 1) -> bool:
    return value <= bound + TOL_ITEM * max(1, items) + TOL_REL * abs(bound)


# --------------------------------------------------------------------------- static rules
def _static(topo: Topology, req: WorkloadRequest, dec: Decision) -> list[tuple[str, str]]:
    """Rules that depend on this decision alone (no other workload)."""
    out: list[tuple[str, str]] = []
    rules = req.rules
    where: dict[str, str] = {}
    for gid, sid, count in dec.placements:
        if gid in where:
            out.append(("placement", f"group {gid!r} placed twice ({where[gid]}, {sid})"))
            continue
        where[gid] = sid
        try:
            g = req.group(gid)
        except KeyError:
            out.append(("placement", f"group {gid!r} is not in the request"))
            continue
        if count != g.count:
            out.append(("placement", f"group {gid!r}: {count} VMs placed, {g.count} requested"))
        site = topo.sites.get(sid)
        if site is None:
            out.append(("site", f"group {gid!r}: site {sid!r} does not exist"))
            continue
        if site.state is not SiteState.ACTIVE:
            out.append(("site", f"group {gid!r}: site {sid!r} is {site.state.value}"))
        if g.hypervisor and g.hypervisor not in site.hypervisors:
            out.append(("hypervisor", f"group {gid!r}: site {sid!r} offers "
                        f"{sorted(site.hypervisors)}, not {g.hypervisor!r}"))
        if rules.vm_jurisdictions and not allowed(rules.vm_jurisdictions, site.jurisdiction):
            out.append(("vm_jurisdiction", f"group {gid!r}: site {sid!r} is in "
                        f"{site.jurisdiction or 'an unknown country'}"))
    for g in req.groups:
        if g.group_id not in where:
            out.append(("placement", f"group {g.group_id!r} is not placed"))
    for aa in rules.anti_affinity:
        seen: dict[str, str] = {}
        for gid in aa:
            at_site = where.get(gid)
            if at_site is not None and at_site in seen:
                out.append(("anti_affinity", f"groups {seen[at_site]!r} and {gid!r} share site "
                            f"{at_site!r}"))
            elif at_site is not None:
                seen[at_site] = gid
    by_demand: dict[str, list[Reservation]] = {}
    known = {d.demand_id for d in req.demands}
    for r in dec.paths:
        if r.demand_id not in known:
            out.append(("path", f"reservation {r.reservation_id!r}: unknown demand {r.demand_id!r}"))
        else:
            by_demand.setdefault(r.demand_id, []).append(r)
    groups = {g.group_id: g for g in req.groups}
    cost = 0.0
    for gid, sid, count in dec.placements:
        if gid in groups and sid in topo.sites:
            cost += count * groups[gid].vcpus * topo.sites[sid].cost_per_vcpu_hour
    for d in req.demands:
        src = where.get(d.from_group)
        if src is None:
            continue
        out += _demand(topo, req, dec, d, src, where, by_demand.get(d.demand_id, []))
    for r in dec.paths:
        cost += r.bandwidth_mbps * sum(topo.links[lid].cost_per_mbps for lid in r.links
                                       if lid in topo.links)
    ceiling = rules.cost_ceiling
    if ceiling > 0 and not _within(cost, ceiling, len(dec.placements) + len(dec.paths)):
        out.append(("cost_ceiling", f"cost {cost:.6g}/h > ceiling {ceiling:.6g}/h"))
    return out


def _demand(
    topo: Topology, req: WorkloadRequest, dec: Decision, d: Demand, src: str,
    where: dict[str, str], rs: list[Reservation],
) -> list[tuple[str, str]]:
    """Paths, service, diversity, latency and transit of one demand."""
    out: list[tuple[str, str]] = []
    name = f"demand {d.demand_id!r}"
    if d.to_location is not None:
        ends = entry_sites(topo, d.to_location.latitude, d.to_location.longitude)
        target = "the entry site of its user location"
    else:
        dst = where.get(d.to_group) if d.to_group else d.to_site
        if dst is None:
            return out
        ends, target = {dst: 0.0}, f"site {dst!r}"
    # No WAN needed when the group sits where the traffic goes (with several equally near
    # entry sites, a path to another one of them is as valid as none).
    if src in ends and (not rs or len(ends) == 1):
        if rs:
            out.append(("path", f"{name}: stays on site {src!r} but reserves {len(rs)} path(s)"))
        if d.max_latency_ms > 0 and not _within(ends[src], d.max_latency_ms):
            out.append(("latency", f"{name}: access latency {ends[src]:.3f} ms > bound "
                        f"{d.max_latency_ms:g} ms"))
        return out
    good: list[Reservation] = []
    for r in rs:
        why = _walk(topo, r, src, ends)
        if why:
            out.append(("path", f"{name}: reservation {r.reservation_id!r}: {why} "
                        f"(expected {src!r} → {target})"))
            continue
        good.append(r)
        lat = sum(topo.links[lid].latency_ms for lid in r.links) + ends[r.sites[-1]]
        if d.max_latency_ms > 0 and not _within(lat, d.max_latency_ms, len(r.links) + 1):
            out.append(("latency", f"{name}: path {r.reservation_id!r} takes {lat:.3f} ms > "
                        f"bound {d.max_latency_ms:g} ms"))
        if req.rules.transit_jurisdictions:
            bad = _crossed_not_allowed(topo, r, req.rules.transit_jurisdictions)
            if bad:
                out.append(("transit_jurisdiction", f"{name}: path {r.reservation_id!r} "
                            f"crosses {'; '.join(bad)}"))
    if dec.kind is Kind.DEGRADED:  # a degraded workload may leave demands unserved
        return out
    if d.diverse:
        full = [r for r in good if _within(d.bandwidth_mbps, r.bandwidth_mbps)]
        pair = any(set(a.links).isdisjoint(b.links) for k, a in enumerate(full)
                   for b in full[k + 1:])
        if not pair:
            out.append(("diversity", f"{name}: no two link-disjoint paths with the full "
                        f"{d.bandwidth_mbps:g} Mbps ({len(full)} full-bandwidth path(s))"))
    else:
        got = sum(r.bandwidth_mbps for r in good)
        if not _within(d.bandwidth_mbps, got, len(good)):
            out.append(("demand", f"{name}: {got:g} of {d.bandwidth_mbps:g} Mbps reserved"))
    return out


def _walk(topo: Topology, r: Reservation, src: str, ends: dict[str, float]) -> str:
    """Why `r` is not a valid walk from `src` to one of `ends`, or ""."""
    sites, links = r.sites, r.links
    if not (r.bandwidth_mbps > 0 and math.isfinite(r.bandwidth_mbps)):
        return f"bandwidth {r.bandwidth_mbps!r} Mbps is not a positive number"
    if not links or len(sites) != len(links) + 1:
        return f"{len(sites)} sites for {len(links)} links"
    if sites[0] != src or sites[-1] not in ends:
        return f"runs {sites[0]!r} → {sites[-1]!r}"
    if len(set(sites)) != len(sites):
        return "visits a site twice"
    for k, lid in enumerate(links):
        ln = topo.links.get(lid)
        if ln is None:
            return f"link {lid!r} does not exist"
        if {ln.a, ln.b} != {sites[k], sites[k + 1]}:
            return f"link {lid!r} joins {ln.a!r}-{ln.b!r}, not {sites[k]!r}-{sites[k + 1]!r}"
    for sid in sites:
        s = topo.sites.get(sid)
        if s is not None and s.state is SiteState.DOWN:
            return f"crosses site {sid!r}, which is down"
    return ""


def _crossed_not_allowed(topo: Topology, r: Reservation, rule: frozenset[str]) -> list[str]:
    """Every site and link on the path whose country the transit rule does not allow."""
    bad: list[str] = []

    def country(sid: str) -> str:
        s = topo.sites.get(sid)
        return s.jurisdiction if s is not None else ""

    for sid in r.sites:
        if not allowed(rule, country(sid)):
            bad.append(f"site {sid!r} ({country(sid) or 'unknown country'})")
    for lid in r.links:
        ln = topo.links[lid]
        cs = set(ln.jurisdictions) | {country(ln.a), country(ln.b)}
        no = sorted(c or "unknown country" for c in cs if not allowed(rule, c))
        if no:
            bad.append(f"link {lid!r} ({', '.join(no)})")
    return bad


# --------------------------------------------------------------------- the shared ledger
class _Ledger:
    """Compute per site and Mbps per link direction, summed over the admitted workloads."""

    def __init__(self, topo: Topology, at: float | None) -> None:
        self.topo, self.at = topo, at
        self.site: dict[str, list[float]] = {}
        self.dirs: dict[tuple[str, str], list[float]] = {}  # (link, from site) → [Mbps, items]

    def _items(self, dec: Decision, req: WorkloadRequest) -> tuple[
            list[tuple[str, tuple[float, float, float]]], list[tuple[tuple[str, str], float]]]:
        groups = {g.group_id: g for g in req.groups}
        comp = [(sid, (n * g.vcpus, n * g.memory_gib, n * g.storage_gib))
                for gid, sid, n in dec.placements
                if (g := groups.get(gid)) is not None and sid in self.topo.sites]
        bw: list[tuple[tuple[str, str], float]] = []
        for r in dec.paths:
            for k, lid in enumerate(r.links):
                ln = self.topo.links.get(lid)
                if ln is not None and k + 1 < len(r.sites) and r.sites[k] in (ln.a, ln.b) \
                        and ln.other(r.sites[k]) == r.sites[k + 1]:
                    bw.append(((lid, r.sites[k]), r.bandwidth_mbps))
        return comp, bw

    def remove(self, dec: Decision, req: WorkloadRequest) -> None:
        comp, bw = self._items(dec, req)
        for sid, need in comp:
            u = self.site[sid]
            for j in range(3):
                u[j] -= need[j]
            u[3] -= 1
        for key, mbps in bw:
            self.dirs[key][0] -= mbps
            self.dirs[key][1] -= 1

    def add(self, dec: Decision, req: WorkloadRequest) -> list[tuple[str, str]]:
        """Add a decision; the compute and bandwidth violations it causes."""
        out: list[tuple[str, str]] = []
        comp, bw = self._items(dec, req)
        for sid, need in comp:
            u = self.site.setdefault(sid, [0.0, 0.0, 0.0, 0.0])
            for j in range(3):
                u[j] += need[j]
            u[3] += 1
        for sid in sorted({sid for sid, _ in comp}):
            s, u = self.topo.sites[sid], self.site[sid]
            for j, (what, cap) in enumerate((("vCPU", s.vcpus), ("GiB memory", s.memory_gib),
                                             ("GiB storage", s.storage_gib))):
                if not _within(u[j], cap, int(u[3])):
                    out.append(("compute", f"site {sid!r}: {u[j]:g} {what} used > capacity {cap:g}"))
        for key, mbps in bw:
            e = self.dirs.setdefault(key, [0.0, 0.0])
            e[0] += mbps
            e[1] += 1
        for lid, frm in sorted({key for key, _ in bw}):
            cap = self.topo.links[lid].capacity_from(frm, self.at)
            used, n = self.dirs[(lid, frm)]
            if not _within(used, cap, int(n)):
                out.append(("bandwidth", f"link {lid!r} from {frm!r}: {used:g} Mbps reserved > "
                            f"capacity {cap:g} Mbps"))
        return out
