"""Workload requests as the engine sees them: VM groups, traffic demands, rules, priority.

Values are immutable and independent of protobuf (see `tandem.pbconvert` for the mapping), so
the engine can be driven from the stream processors, the CLI, tests and benchmarks alike.
`validate` catches requests that are malformed in themselves (unknown group in a demand,
negative bandwidth...); such a request is *rejected* with constraint "invalid_request", it is
not an error of the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from .jurisdiction import expand
from .topology import Topology


class Priority(IntEnum):
    """Priority class; a higher value may preempt a lower one (never an equal one)."""

    UNSPECIFIED = 0
    BEST_EFFORT = 1
    STANDARD = 2
    PREMIUM = 3
    CRITICAL = 4


@dataclass(frozen=True, slots=True)
class VmGroup:
    group_id: str
    count: int = 1
    vcpus: float = 1.0
    memory_gib: float = 1.0
    storage_gib: float = 0.0
    # Required hypervisor kind ("vsphere", "kvm"); empty means any.
    hypervisor: str = ""

    @property
    def total(self) -> tuple[float, float, float]:
        return (self.count * self.vcpus, self.count * self.memory_gib, self.count * self.storage_gib)


@dataclass(frozen=True, slots=True)
class Location:
    """A user location; traffic to it enters the WAN at the nearest active site."""

    latitude: float
    longitude: float
    city: str = ""


@dataclass(frozen=True, slots=True)
class Demand:
    """Traffic from a group to exactly one of: another group, a fixed site, a user location.

    Reserved in one direction (from → to); model return traffic as a second demand.
    `diverse` asks for 1+1 protection: the full bandwidth on two link-disjoint paths.
    """

    demand_id: str
    from_group: str
    bandwidth_mbps: float
    to_group: str = ""
    to_site: str = ""
    to_location: Location | None = None
    # 0 means unbounded.
    max_latency_ms: float = 0.0
    diverse: bool = False


@dataclass(frozen=True, slots=True)
class Rules:
    # Expanded country sets (see `jurisdiction.expand`); empty = any.
    vm_jurisdictions: frozenset[str] = frozenset()
    transit_jurisdictions: frozenset[str] = frozenset()
    # Each tuple: groups that must land on pairwise different sites.
    anti_affinity: tuple[tuple[str, ...], ...] = ()
    # Maximum cost per hour (compute + bandwidth); 0 means no ceiling.
    cost_ceiling: float = 0.0

    @staticmethod
    def of(
        vm_jurisdictions: tuple[str, ...] | list[str] = (),
        transit_jurisdictions: tuple[str, ...] | list[str] = (),
        anti_affinity: tuple[tuple[str, ...], ...] = (),
        cost_ceiling: float = 0.0,
    ) -> Rules:
        """Build rules from codes and groupings as a user writes them ("EU", "CH")."""
        return Rules(expand(vm_jurisdictions), expand(transit_jurisdictions),
                     tuple(tuple(g) for g in anti_affinity), cost_ceiling)


@dataclass(frozen=True, slots=True)
class WorkloadRequest:
    workload_id: str
    groups: tuple[VmGroup, ...]
    demands: tuple[Demand, ...] = ()
    rules: Rules = Rules()
    tenant: str = ""
    priority: Priority = Priority.STANDARD
    request_id: str = ""

    def group(self, group_id: str) -> VmGroup:
        for g in self.groups:
            if g.group_id == group_id:
                return g
        raise KeyError(group_id)

    @property
    def bandwidth_mbps(self) -> float:
        """Total bandwidth asked for (diverse demands counted once)."""
        return sum(d.bandwidth_mbps for d in self.demands)


def validate(req: WorkloadRequest, topology: Topology) -> str | None:
    """Why the request is malformed in itself, or None. Deterministic first-error order."""
    if not req.workload_id:
        return "workload_id is empty"
    if not req.groups:
        return "request has no VM group"
    ids = [g.group_id for g in req.groups]
    if len(set(ids)) != len(ids) or "" in ids:
        return "group ids must be unique and non-empty"
    for g in req.groups:
        if g.count < 1:
            return f"group {g.group_id!r}: count must be >= 1"
        if min(g.vcpus, g.memory_gib, g.storage_gib) < 0:
            return f"group {g.group_id!r}: negative resources"
    dids = [d.demand_id for d in req.demands]
    if len(set(dids)) != len(dids) or "" in dids:
        return "demand ids must be unique and non-empty"
    for d in req.demands:
        if d.from_group not in ids:
            return f"demand {d.demand_id!r}: from_group {d.from_group!r} is not a group"
        targets = sum((bool(d.to_group), bool(d.to_site), d.to_location is not None))
        if targets != 1:
            return f"demand {d.demand_id!r}: exactly one of to_group/to_site/to_location"
        if d.to_group and d.to_group not in ids:
            return f"demand {d.demand_id!r}: to_group {d.to_group!r} is not a group"
        if d.to_group == d.from_group:
            return f"demand {d.demand_id!r}: from_group and to_group are the same"
        if d.to_site and d.to_site not in topology.sites:
            return f"demand {d.demand_id!r}: to_site {d.to_site!r} is not a known site"
        if not d.bandwidth_mbps > 0 or d.bandwidth_mbps == float("inf"):
            return f"demand {d.demand_id!r}: bandwidth_mbps must be > 0"
        if d.max_latency_ms < 0:
            return f"demand {d.demand_id!r}: max_latency_ms must be >= 0"
        loc = d.to_location
        if loc is not None and not (-90 <= loc.latitude <= 90 and -180 <= loc.longitude <= 180):
            return f"demand {d.demand_id!r}: to_location out of range"
    for aa in req.rules.anti_affinity:
        for gid in aa:
            if gid not in ids:
                return f"anti_affinity names unknown group {gid!r}"
    if req.rules.cost_ceiling < 0:
        return "cost_ceiling must be >= 0"
    return None
