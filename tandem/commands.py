"""From a decision to the per-site commands that carry it out (pure).

The difference between a workload's previous decision and its new one becomes:
SDN `InstallPath` for every new reservation on every site of its path (transit and egress
sites before the ingress switch-over), compute orders (create, migrate in/out, delete), and
`RemovePath` for every reservation that is gone — in that order, make-before-break.

Ports and datapath ids follow the emulated WAN's deterministic layout
(`tandem.sdn.wanplan.plan_wan`: datapath id = site rank, port 1 = the site's host, links on
ports 2, 3, ... in link-id order), overridden by the ports and datapath ids that inventory
events publish. Traffic of a reservation is matched on its end sites' host addresses.
"""

from __future__ import annotations

from collections.abc import Mapping

from tandem.engine.decision import Decision, Kind, Reservation
from tandem.engine.topology import Topology
from tandem.events import derived_id, new_meta
from tandem.sdn.paths import LinkPorts, WanLayout, install_commands, remove_command
from tandem.sdn.wanplan import plan_wan
from tandem.v1 import commands_pb2

SOURCE = "streams/decider"


class Layout:
    """Ports, datapath ids and host addresses for the current topology."""

    def __init__(self, topology: Topology, dpids: Mapping[str, int] | None = None,
                 ports: Mapping[str, tuple[int, int]] | None = None) -> None:
        self.wan: WanLayout | None = None
        self.host_ip: dict[str, str] = {}
        if not topology.sites:
            return
        try:
            plan = plan_wan(topology)
        except ValueError:
            return
        d = {s.site_id: s.dpid for s in plan.sites}
        d.update({k: v for k, v in (dpids or {}).items() if v})
        links = {}
        for lp in plan.links:
            pa, pb = (ports or {}).get(lp.link_id, (0, 0))
            links[lp.link_id] = LinkPorts(lp.link_id, lp.site_a, pa or lp.port_a, lp.site_b,
                                          pb or lp.port_b)
        self.wan = WanLayout(d, links)
        self.host_ip = {s.site_id: s.host_ip for s in plan.sites}


def _paths(d: Decision | None) -> dict[str, Reservation]:
    if d is None or d.kind in (Kind.RELEASED, Kind.PREEMPTED, Kind.REJECTED):
        return {}
    return {r.reservation_id: r for r in d.paths}


def _vms(d: Decision | None) -> dict[str, tuple[str, str, int]]:
    """vm name → (group id, site id, index)."""
    if d is None or d.kind in (Kind.RELEASED, Kind.PREEMPTED, Kind.REJECTED):
        return {}
    out = {}
    for group, site, count in d.placements:
        for i in range(count):
            out[f"{d.workload_id}-{group}-{i}"] = (group, site, i)
    return out


def commands_for(
    layout: Layout, old: Decision | None, new: Decision, correlation_id: str, at: float
) -> tuple[list[commands_pb2.SdnCommand], list[commands_pb2.ComputeCommand]]:
    """The ordered SDN and compute commands that turn `old` into `new`."""
    if new.kind is Kind.REJECTED:
        return [], []  # a refused change leaves the running workload as it was
    before, after = _paths(old), _paths(new)
    sdn: list[commands_pb2.SdnCommand] = []
    compute: list[commands_pb2.ComputeCommand] = []
    gen = new.revision
    if layout.wan is not None:
        ingress_last: list[commands_pb2.SdnCommand] = []
        for rid in sorted(set(after) - set(before)):
            r = after[rid]
            if len(r.sites) < 2:
                continue
            cmds = install_commands(
                layout.wan, reservation_id=rid, generation=gen, src=r.sites[0],
                link_path=list(r.links), ipv4_src=layout.host_ip.get(r.sites[0], ""),
                ipv4_dst=layout.host_ip.get(r.sites[-1], ""),
                rate_kbps=int(round(r.bandwidth_mbps * 1000)), correlation_id=correlation_id)
            for site, cmd in reversed(list(cmds.items())):
                (ingress_last if cmd.install.ingress else sdn).append(cmd)
        sdn.extend(ingress_last)
    vm_before, vm_after = _vms(old), _vms(new)
    for name in sorted(vm_after):
        group, site, _ = vm_after[name]
        was = vm_before.get(name)
        if was is None:
            compute.append(_vm(new, name, group, site, commands_pb2.ComputeCommand.ACTION_CREATE))
        elif was[1] != site:
            compute.append(_vm(new, name, group, site, commands_pb2.ComputeCommand.ACTION_MIGRATE_IN,
                               peer=was[1]))
            compute.append(_vm(new, name, group, was[1],
                               commands_pb2.ComputeCommand.ACTION_MIGRATE_OUT, peer=site))
    for name in sorted(set(vm_before) - set(vm_after)):
        group, site, _ = vm_before[name]
        compute.append(_vm(new, name, group, site, commands_pb2.ComputeCommand.ACTION_DELETE))
    if layout.wan is not None:
        for rid in sorted(set(before) - set(after)):
            for site in before[rid].sites:
                if site in layout.wan.dpids:
                    cmd = remove_command(site, rid, 0)
                    cmd.command_id += f"/{new.kind.value}-rev{gen}"
                    sdn.append(cmd)
    for cmd in sdn:
        cmd.meta.CopyFrom(new_meta(SOURCE, correlation_id, derived_id("sdn", cmd.command_id), at))
    for cc in compute:
        cc.meta.CopyFrom(new_meta(SOURCE, correlation_id, derived_id("compute", cc.command_id), at))
    return sdn, compute


def _vm(d: Decision, name: str, group: str, site: str, action: int,
        peer: str = "") -> commands_pb2.ComputeCommand:
    g = d.request.group(group) if d.request is not None else None
    spec = commands_pb2.VmSpec(vm_name=name, workload_id=d.workload_id, group_id=group)
    if g is not None:
        spec.vcpus, spec.memory_gib, spec.storage_gib = g.vcpus, g.memory_gib, g.storage_gib
        spec.hypervisor = g.hypervisor
    verb = commands_pb2.ComputeCommand.Action.Name(action).removeprefix("ACTION_").lower()
    return commands_pb2.ComputeCommand(
        command_id=f"{name}/{verb}/rev{d.revision}/{site}", site_id=site,
        action=action, vm=spec, peer_site_id=peer)  # type: ignore[arg-type]
