"""What the engine answers: placements, path reservations, rejections and their explanation.

Plain immutable values mirroring `protos/tandem/v1/decision.proto` (see `tandem.pbconvert`).
Reservation ids are derived from workload id, demand id and path index, so a replay yields the
same ids and the SDN units can reconcile flow tables against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

from .workload import Priority, WorkloadRequest


class Kind(str, Enum):
    PLACED = "placed"
    REJECTED = "rejected"
    RELEASED = "released"
    REROUTED = "rerouted"
    MIGRATED = "migrated"
    REROUTED_AND_MIGRATED = "rerouted_and_migrated"
    PREEMPTED = "preempted"
    DEGRADED = "degraded"
    # Carrying out the workload's last decision failed and was undone: the workload is back on
    # its previous decision's placements and paths (carried by this one), or holds nothing when
    # there was none (a first placement).
    ROLLED_BACK = "rolled_back"


# Constraint names, as listed in decision.proto Rejection.constraint.
CONSTRAINTS = (
    "compute", "latency", "vm_jurisdiction", "transit_jurisdiction", "bandwidth",
    "anti_affinity", "diversity", "cost_ceiling", "hypervisor", "invalid_request",
)


def reservation_id(workload_id: str, demand_id: str, index: int) -> str:
    return f"{workload_id}/{demand_id}/{index}"


@dataclass(frozen=True, slots=True)
class Reservation:
    """Bandwidth reserved on every link of one path, in the direction sites[i] → sites[i+1]."""

    reservation_id: str
    workload_id: str
    demand_id: str
    sites: tuple[str, ...]
    links: tuple[str, ...]
    # Compiled direction indices (2*link_index + 0/1) of the network it was computed on.
    dirs: tuple[int, ...]
    bandwidth_mbps: float
    latency_ms: float


@dataclass(frozen=True, slots=True)
class Rejection:
    constraint: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Alternative:
    """One option weighed; `lost_because` is empty for the winner."""

    placements: tuple[tuple[str, str], ...]  # (group_id, site_id)
    cost: float
    max_latency_ms: float
    score: float
    lost_because: str = ""


@dataclass(frozen=True, slots=True)
class Explanation:
    summary: str
    alternatives: tuple[Alternative, ...] = ()


class Action(str, Enum):
    ADD_PATH = "add_path"
    REMOVE_PATH = "remove_path"
    START_VM = "start_vm"
    STOP_VM = "stop_vm"
    MIGRATE_VM = "migrate_vm"


@dataclass(frozen=True, slots=True)
class ChangeStep:
    action: Action
    workload_id: str
    reservation_id: str = ""
    group_id: str = ""
    from_site: str = ""
    to_site: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    kind: Kind
    workload_id: str
    tenant: str = ""
    request_id: str = ""
    # (group_id, site_id, count)
    placements: tuple[tuple[str, str, int], ...] = ()
    paths: tuple[Reservation, ...] = ()
    cost: float = 0.0
    max_latency_ms: float = 0.0
    score: float = 0.0
    rejection: Rejection | None = None
    explanation: Explanation = Explanation("")
    change_set: tuple[ChangeStep, ...] = ()
    preempted: tuple[str, ...] = ()
    # Bumped on every reroute/migration so new reservation ids never collide with old ones.
    revision: int = 0
    # The request this decision answers (needed to re-decide on a failure); not serialised.
    request: WorkloadRequest | None = field(default=None, compare=False)

    @property
    def admitted(self) -> bool:
        return self.kind not in (Kind.REJECTED, Kind.RELEASED, Kind.ROLLED_BACK)

    @property
    def holds(self) -> bool:
        """Whether the workload holds placements and paths after this decision (false for a
        rejection, a release, a preemption, and a rollback of a first placement)."""
        if self.kind in (Kind.REJECTED, Kind.RELEASED, Kind.PREEMPTED):
            return False
        return self.kind is not Kind.ROLLED_BACK or bool(self.placements)

    @property
    def priority(self) -> Priority:
        return self.request.priority if self.request is not None else Priority.STANDARD

    @property
    def site_of(self) -> dict[str, str]:
        return {g: s for g, s, _ in self.placements}


def rejected(req: WorkloadRequest, constraint: str, detail: str,
             alternatives: tuple[Alternative, ...] = ()) -> Decision:
    return Decision(
        Kind.REJECTED, req.workload_id, req.tenant, req.request_id,
        rejection=Rejection(constraint, detail),
        explanation=Explanation(f"rejected: {constraint}: {detail}", alternatives),
        request=req,
    )


def succeed(new: Decision, old: Decision) -> Decision:
    """`new` as the successor of `old` (a change of an admitted workload): the next revision;
    reservations unchanged (same demand, same links and directions, same bandwidth) keep their
    ids, changed ones get the next revision's ids. Why: the steps from `old` to `new` are
    planned by reservation id (`tandem.steps`), so a path or bandwidth that changed under the
    same id would be neither installed nor removed."""
    olds = {(r.demand_id, r.dirs, r.bandwidth_mbps): r for r in old.paths}
    rev = old.revision + 1
    paths = []
    for r in new.paths:
        same = olds.get((r.demand_id, r.dirs, r.bandwidth_mbps))
        paths.append(same if same is not None else replace(
            r, reservation_id=f"{r.reservation_id}.r{rev}"))
    return replace(new, paths=tuple(paths), revision=rev)
