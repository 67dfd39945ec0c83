"""How a decision is carried out: its ordered, make-before-break steps (pure).

The one implementation of the make-before-break order. The change from a workload's previous
decision to its new one becomes steps; the commands of one step go to their sites together,
and a step starts only when every command of the previous one is acknowledged (the executor,
`tandem.executor`, carries them out):

1. **create VMs** — new VMs (and VMs migrating in) at their new sites, powered off: a VM
   sends nothing before the network that carries its traffic is programmed;
2. **install new paths, transit and egress** — the new reservations on every site of their
   path but the one where the traffic enters the WAN (nothing flows on them yet);
3. **switch over at the ingress** — the new reservations where the traffic enters: from now on
   the traffic takes the new paths;
4. **power VMs on** — the VMs of step 1, now connected;
5. **migrate VMs out** — VMs that moved leave their old sites (so a migration's new copy is up
   and connected before the old one is switched off and deleted);
6. **remove old paths** — reservations that are gone, on every site of their path;
7. **delete VMs** — VMs that are gone.

Empty steps are left out. Commands speak sites, links and workloads only: an `InstallPath`
names the link the traffic arrives by and leaves by at the site (`SiteCrossing`), never a
port; each site's SDN unit resolves links to its own switches' ports. Traffic is matched on the
address blocks of the workload's groups (`tandem.addressing`), so each reservation carries only
its own workload's traffic. Command ids are derived from the decision, so a replay derives the
same commands and a unit recognises a repeat.
"""

from __future__ import annotations

from tandem.addressing import Blocks
from tandem.engine.decision import Decision, Kind, Reservation
from tandem.events import derived_id, new_meta
from tandem.v1 import commands_pb2, decision_pb2

SOURCE = "streams/decider"
C = commands_pb2.ComputeCommand

STEP_NAMES = ("create VMs", "install new paths (transit and egress)", "switch over at the ingress",
              "power VMs on", "migrate VMs out", "remove old paths", "delete VMs")
CREATE, INSTALL, SWITCH, POWER_ON, MIGRATE_OUT, REMOVE, DELETE = range(len(STEP_NAMES))
# Steps after the new state is live: the executor reports their failures and undoes nothing.
CLEANUP_STEPS = frozenset(STEP_NAMES[MIGRATE_OUT:])


def _paths(d: Decision | None) -> dict[str, Reservation]:
    if d is None or not d.holds:
        return {}
    return {r.reservation_id: r for r in d.paths}


def vms_of(d: Decision | None) -> dict[str, tuple[str, str, int]]:
    """vm name → (group id, site id, index within the group) of an admitted decision."""
    if d is None or not d.holds:
        return {}
    out: dict[str, tuple[str, str, int]] = {}
    index: dict[str, int] = {}
    for group, site, count in d.placements:
        for _ in range(count):
            i = index.get(group, 0)
            index[group] = i + 1
            out[f"{d.workload_id}-{group}-{i}"] = (group, site, i)
    return out


def crossings(r: Reservation) -> list[tuple[str, str, str]]:
    """[(site, in link, out link)] along a reservation; "" = the site's local attachment."""
    out = []
    for i, site in enumerate(r.sites):
        out.append((site, r.links[i - 1] if i > 0 else "", r.links[i] if i < len(r.links) else ""))
    return out


def match_of(d: Decision, r: Reservation, blocks: Blocks) -> commands_pb2.TrafficMatch:
    """Source = the demand's group block; destination = its target group's block (any, for a
    demand to a site or a user location: the source block alone is the workload's)."""
    m = commands_pb2.TrafficMatch()
    req = d.request
    demand = next((x for x in req.demands if x.demand_id == r.demand_id), None) if req else None
    if demand is not None:
        m.ipv4_src = blocks.cidr(d.workload_id, demand.from_group)
        if demand.to_group:
            m.ipv4_dst = blocks.cidr(d.workload_id, demand.to_group)
    return m


def plan(old: Decision | None, new: Decision, blocks: Blocks, correlation_id: str,
         at: float, decision_id: str = "") -> list[decision_pb2.ExecutionStep]:
    """The steps that turn `old` (what runs) into `new`; none for a rejection. Command ids end
    with the decision's id: a workload ordered again after a release reuses reservation ids,
    never command ids."""
    if new.kind is Kind.REJECTED:
        return []  # a refused change leaves the running workload as it was
    steps: list[tuple[list[commands_pb2.SdnCommand], list[C]]] = [([], []) for _ in STEP_NAMES]
    gen = new.revision
    tag = decision_id[:8]
    before, after = _paths(old), _paths(new)
    for rid in sorted(set(after) - set(before)):
        r = after[rid]
        if len(r.sites) < 2:
            continue
        match = match_of(new, r, blocks)
        for site, in_link, out_link in crossings(r):
            ingress = in_link == ""
            cmd = commands_pb2.SdnCommand(
                command_id=f"install/{rid}/g{gen}/{site}/{tag}", site_id=site,
                install=commands_pb2.InstallPath(
                    reservation_id=rid, generation=gen, match=match, workload_id=new.workload_id,
                    rate_kbps=int(round(r.bandwidth_mbps * 1000)), ingress=ingress,
                    crossing=commands_pb2.SiteCrossing(in_link_id=in_link, out_link_id=out_link)))
            steps[SWITCH if ingress else INSTALL][0].append(cmd)
    for rid in sorted(set(before) - set(after)):
        for site in dict.fromkeys(before[rid].sites):
            steps[REMOVE][0].append(commands_pb2.SdnCommand(
                command_id=f"remove/{rid}/g{gen}/{site}/{tag}", site_id=site,
                remove=commands_pb2.RemovePath(reservation_id=rid, generation=0,
                                               workload_id=new.workload_id)))
    vm_before, vm_after = vms_of(old), vms_of(new)
    for name in sorted(vm_after):
        group, site, i = vm_after[name]
        was = vm_before.get(name)
        if was is None:
            steps[CREATE][1].append(_vm(new, blocks, name, group, site, i, C.ACTION_CREATE, tag))
        elif was[1] != site:
            steps[CREATE][1].append(_vm(new, blocks, name, group, site, i, C.ACTION_MIGRATE_IN,
                                        tag, peer=was[1]))
            steps[MIGRATE_OUT][1].append(_vm(new, blocks, name, group, was[1], i,
                                             C.ACTION_MIGRATE_OUT, tag, peer=site))
        else:
            continue
        steps[POWER_ON][1].append(_vm(new, blocks, name, group, site, i, C.ACTION_POWER_ON, tag))
    for name in sorted(set(vm_before) - set(vm_after)):
        group, site, i = vm_before[name]
        steps[DELETE][1].append(_vm(old or new, blocks, name, group, site, i, C.ACTION_DELETE,
                                    tag, revision=gen))
    out: list[decision_pb2.ExecutionStep] = []
    for what, (sdn, compute) in zip(STEP_NAMES, steps):
        if not sdn and not compute:
            continue
        for cmd in sdn:
            cmd.meta.CopyFrom(new_meta(SOURCE, correlation_id,
                                       derived_id("sdn", new.workload_id, cmd.command_id), at))
        for cc in compute:
            cc.meta.CopyFrom(new_meta(SOURCE, correlation_id,
                                      derived_id("compute", new.workload_id, cc.command_id), at))
        out.append(decision_pb2.ExecutionStep(index=len(out), what=what, sdn=sdn, compute=compute))
    return out


def _vm(d: Decision, blocks: Blocks, name: str, group: str, site: str, index: int, action: int,
        tag: str, peer: str = "", revision: int | None = None) -> C:
    g = d.request.group(group) if d.request is not None else None
    spec = commands_pb2.VmSpec(vm_name=name, workload_id=d.workload_id, group_id=group)
    if g is not None:
        spec.vcpus, spec.memory_gib, spec.storage_gib = g.vcpus, g.memory_gib, g.storage_gib
        spec.hypervisor = g.hypervisor
    verb = C.Action.Name(action).removeprefix("ACTION_").lower()
    rev = d.revision if revision is None else revision
    return C(command_id=f"{verb}/{name}/rev{rev}/{site}/{tag}", site_id=site, action=action,  # type: ignore[arg-type]
             vm=spec, peer_site_id=peer, ipv4_address=blocks.address(d.workload_id, group, index))


def steps_of(decision: decision_pb2.Decision) -> list[list[commands_pb2.SdnCommand | C]]:
    """The commands of each step of a published decision, in order."""
    return [[*s.sdn, *s.compute] for s in decision.steps]
