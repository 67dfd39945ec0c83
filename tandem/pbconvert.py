"""Engine values <-> protobuf `tandem.v1` messages (an adapter at the edge of the pure core).

The engine never imports protobuf; the CLI, the stream processors and the gRPC API convert at
their boundary with these functions. Mappings that are not one-to-one:
- `PRIORITY_CLASS_UNSPECIFIED` becomes STANDARD (the default class of a request);
- rule jurisdictions are expanded ("EU" → its member countries) when entering the engine;
- capacity windows carry Timestamps on the wire and seconds since the epoch in the engine;
- a decision's `meta` is left for the producer to fill (event id, time, source).
"""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from tandem.engine import decision as ed
from tandem.engine import topology as et
from tandem.engine import workload as ew
from tandem.v1 import common_pb2, decision_pb2, inventory_pb2, workload_pb2

# ------------------------------------------------------------------------------ requests


def request_from_pb(pb: workload_pb2.WorkloadRequest, request_id: str = "") -> ew.WorkloadRequest:
    groups = tuple(
        ew.VmGroup(g.group_id, int(g.count), g.vcpus, g.memory_gib, g.storage_gib, g.hypervisor)
        for g in pb.groups
    )
    demands = []
    for d in pb.demands:
        which = d.WhichOneof("to")
        loc = None
        if which == "to_location":
            loc = ew.Location(d.to_location.latitude, d.to_location.longitude, d.to_location.city)
        demands.append(ew.Demand(
            d.demand_id, d.from_group, d.bandwidth_mbps,
            to_group=d.to_group if which == "to_group" else "",
            to_site=d.to_site if which == "to_site" else "",
            to_location=loc, max_latency_ms=d.max_latency_ms, diverse=d.diverse))
    r = pb.rules
    rules = ew.Rules.of(list(r.vm_jurisdictions), list(r.transit_jurisdictions),
                        tuple(tuple(a.group_ids) for a in r.anti_affinity), r.cost_ceiling)
    prio = ew.Priority(int(pb.priority)) if pb.priority else ew.Priority.STANDARD
    return ew.WorkloadRequest(pb.workload_id, groups, tuple(demands), rules, pb.tenant, prio,
                              request_id)


def request_to_pb(req: ew.WorkloadRequest) -> workload_pb2.WorkloadRequest:
    """Rules are written as expanded country codes (the engine keeps no grouping names)."""
    pb = workload_pb2.WorkloadRequest(tenant=req.tenant, workload_id=req.workload_id,
                                      priority=int(req.priority))  # type: ignore[arg-type]
    for g in req.groups:
        pb.groups.add(group_id=g.group_id, count=g.count, vcpus=g.vcpus, memory_gib=g.memory_gib,
                      storage_gib=g.storage_gib, hypervisor=g.hypervisor)
    for d in req.demands:
        m = pb.demands.add(demand_id=d.demand_id, from_group=d.from_group,
                           bandwidth_mbps=d.bandwidth_mbps, max_latency_ms=d.max_latency_ms,
                           diverse=d.diverse)
        if d.to_group:
            m.to_group = d.to_group
        elif d.to_site:
            m.to_site = d.to_site
        elif d.to_location is not None:
            m.to_location.CopyFrom(common_pb2.Location(
                latitude=d.to_location.latitude, longitude=d.to_location.longitude,
                city=d.to_location.city))
    pb.rules.vm_jurisdictions.extend(sorted(req.rules.vm_jurisdictions))
    pb.rules.transit_jurisdictions.extend(sorted(req.rules.transit_jurisdictions))
    for aa in req.rules.anti_affinity:
        pb.rules.anti_affinity.add(group_ids=list(aa))
    pb.rules.cost_ceiling = req.rules.cost_ceiling
    return pb


# ----------------------------------------------------------------------------- decisions
_KIND = {k: getattr(decision_pb2, f"DECISION_KIND_{k.name}") for k in ed.Kind}
_KIND_BACK = {v: k for k, v in _KIND.items()}
_ACTION = {a: getattr(decision_pb2.ChangeStep, f"ACTION_{a.name}") for a in ed.Action}


def decision_to_pb(dec: ed.Decision) -> decision_pb2.Decision:
    pb = decision_pb2.Decision(request_id=dec.request_id, tenant=dec.tenant,
                               workload_id=dec.workload_id, kind=_KIND[dec.kind],
                               cost=dec.cost, max_latency_ms=dec.max_latency_ms)
    for g, s, n in dec.placements:
        pb.placements.add(group_id=g, site_id=s, count=n)
    for r in dec.paths:
        pb.paths.add(reservation_id=r.reservation_id, demand_id=r.demand_id,
                     site_ids=list(r.sites), link_ids=list(r.links),
                     bandwidth_mbps=r.bandwidth_mbps, latency_ms=r.latency_ms)
    if dec.rejection is not None:
        pb.rejection.constraint = dec.rejection.constraint
        pb.rejection.detail = dec.rejection.detail
    pb.explanation.summary = dec.explanation.summary
    for a in dec.explanation.alternatives:
        alt = pb.explanation.alternatives.add(cost=a.cost, max_latency_ms=a.max_latency_ms,
                                              lost_because=a.lost_because, score=a.score)
        for g, s in a.placements:
            alt.placements.add(group_id=g, site_id=s)
    for st in dec.change_set:
        pb.change_set.add(action=_ACTION[st.action], workload_id=st.workload_id,
                          reservation_id=st.reservation_id, group_id=st.group_id,
                          from_site=st.from_site, to_site=st.to_site)
    pb.preempted_workload_ids.extend(dec.preempted)
    return pb


def decision_from_pb(pb: decision_pb2.Decision) -> ed.Decision:
    """A `tandem.v1.Decision` as an engine `Decision`, for what can be read back from the wire
    (placements, paths, cost, latency, rejection, summary).

    Direction indices are engine-internal and not on the wire: reservations get none, and a
    reader derives directions from the sites and links (`State._dirs` remaps them too)."""
    paths = tuple(ed.Reservation(p.reservation_id, pb.workload_id, p.demand_id,
                                 tuple(p.site_ids), tuple(p.link_ids), (), p.bandwidth_mbps,
                                 p.latency_ms)
                  for p in pb.paths)
    rejection = (ed.Rejection(pb.rejection.constraint, pb.rejection.detail)
                 if pb.HasField("rejection") else None)
    return ed.Decision(kind_from_pb(pb.kind), pb.workload_id, pb.tenant, pb.request_id,
                       tuple((p.group_id, p.site_id, int(p.count)) for p in pb.placements),
                       paths, pb.cost, pb.max_latency_ms, rejection=rejection,
                       explanation=ed.Explanation(pb.explanation.summary))


def change_step_to_pb(step: ed.ChangeStep) -> decision_pb2.ChangeStep:
    return decision_pb2.ChangeStep(action=_ACTION[step.action], workload_id=step.workload_id,
                                   reservation_id=step.reservation_id, group_id=step.group_id,
                                   from_site=step.from_site, to_site=step.to_site)


def kind_from_pb(kind: int) -> ed.Kind:
    return _KIND_BACK[kind]


# ------------------------------------------------------------------------------ topology
_SITE_STATE = {et.SiteState.ACTIVE: inventory_pb2.SITE_STATE_ACTIVE,
               et.SiteState.DRAINING: inventory_pb2.SITE_STATE_DRAINING,
               et.SiteState.DOWN: inventory_pb2.SITE_STATE_DOWN}
_LINK_KIND = {et.LinkKind.FIBRE: inventory_pb2.LINK_KIND_FIBRE,
              et.LinkKind.MPLS: inventory_pb2.LINK_KIND_MPLS,
              et.LinkKind.LAN_GATEWAY: inventory_pb2.LINK_KIND_LAN_GATEWAY,
              et.LinkKind.SATELLITE: inventory_pb2.LINK_KIND_SATELLITE}


def _ts(seconds: float) -> Timestamp:
    t = Timestamp()
    t.FromNanoseconds(int(round(seconds * 1e9)))
    return t


def site_to_pb(s: et.Site) -> inventory_pb2.Site:
    from tandem.engine.jurisdiction import groups_of

    return inventory_pb2.Site(
        site_id=s.site_id, name=s.name,
        location=common_pb2.Location(latitude=s.latitude, longitude=s.longitude),
        jurisdiction=s.jurisdiction, jurisdiction_groups=sorted(groups_of(s.jurisdiction)),
        capacity=inventory_pb2.ComputeCapacity(vcpus=s.vcpus, memory_gib=s.memory_gib,
                                               storage_gib=s.storage_gib),
        hypervisors=sorted(s.hypervisors), cost_per_vcpu_hour=s.cost_per_vcpu_hour,
        state=_SITE_STATE[s.state])


def site_from_pb(pb: inventory_pb2.Site) -> et.Site:
    back = {v: k for k, v in _SITE_STATE.items()}
    return et.Site(pb.site_id, pb.name, pb.location.latitude, pb.location.longitude,
                   pb.jurisdiction, pb.capacity.vcpus, pb.capacity.memory_gib,
                   pb.capacity.storage_gib, frozenset(pb.hypervisors), pb.cost_per_vcpu_hour,
                   back.get(pb.state, et.SiteState.ACTIVE))


def link_to_pb(ln: et.Link) -> inventory_pb2.Link:
    pb = inventory_pb2.Link(
        link_id=ln.link_id, site_a=ln.a, site_b=ln.b, capacity_ab_mbps=ln.capacity_ab_mbps,
        capacity_ba_mbps=ln.capacity_ba_mbps, latency_ms=ln.latency_ms, loss=ln.loss,
        kind=_LINK_KIND[ln.kind], jurisdictions=sorted(ln.jurisdictions),
        cost_per_mbps=ln.cost_per_mbps,
        admin_state=inventory_pb2.ADMIN_STATE_ENABLED if ln.admin_up
        else inventory_pb2.ADMIN_STATE_DISABLED)
    for w in ln.capacity_schedule:
        pb.capacity_schedule.add(start=_ts(w.start), end=_ts(w.end), capacity_mbps=w.capacity_mbps)
    return pb


def link_from_pb(pb: inventory_pb2.Link) -> et.Link:
    back = {v: k for k, v in _LINK_KIND.items()}
    sched = tuple(et.CapacityWindow(w.start.ToNanoseconds() / 1e9, w.end.ToNanoseconds() / 1e9,
                                    w.capacity_mbps) for w in pb.capacity_schedule)
    return et.Link(pb.link_id, pb.site_a, pb.site_b, pb.capacity_ab_mbps, pb.capacity_ba_mbps,
                   pb.latency_ms, pb.loss, back.get(pb.kind, et.LinkKind.FIBRE),
                   frozenset(pb.jurisdictions), pb.cost_per_mbps,
                   pb.admin_state != inventory_pb2.ADMIN_STATE_DISABLED,
                   capacity_schedule=sched)


def topology_to_pb(topo: et.Topology) -> tuple[list[inventory_pb2.Site], list[inventory_pb2.Link]]:
    return [site_to_pb(s) for s in topo.sites.values()], [link_to_pb(ln) for ln in topo.links.values()]


def topology_from_pb(sites: list[inventory_pb2.Site], links: list[inventory_pb2.Link],
                     name: str = "") -> et.Topology:
    return et.Topology({s.site_id: site_from_pb(s) for s in sites},
                       {ln.link_id: link_from_pb(ln) for ln in links}, name)
