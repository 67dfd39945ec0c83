"""Link-state events: validity rules, and what a link's conditions make of it (pure)."""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from tandem.engine.topology import Link, OperState, Topology

from tandem.v1 import link_state_pb2
from tandem.validation import INVALID, UNKNOWN_REFERENCE, check_meta, check_ranges, require


def check_link_state(event: link_state_pb2.LinkStateEvent, known_links: Container[str],
                     now: float | None = None) -> None:
    check_meta(event, now)
    check_ranges(event)
    require(bool(event.link_id), INVALID, "link_id: empty")
    require(event.state != link_state_pb2.OPER_STATE_UNSPECIFIED, INVALID, "state: unspecified")
    require(event.link_id in known_links, UNKNOWN_REFERENCE,
            f"link_id = {event.link_id!r}: no such link in the inventory")


@dataclass
class LinkOper:
    """A link's two independent conditions: operationally down (port status, NOC), and
    outside its SLA band (telemetry), with the usable fraction of capacity while it is."""

    down: bool = False
    sla_factor: float | None = None

    @property
    def state(self) -> OperState:
        if self.down:
            return OperState.DOWN
        return OperState.DEGRADED if self.sla_factor is not None else OperState.UP

    @property
    def factor(self) -> float:
        return 1.0 if self.down or self.sla_factor is None else self.sla_factor


def link_factor(link: Link, deg: link_state_pb2.Degradation) -> float:
    """Usable fraction of capacity while degraded: from the effective capacity if given."""
    nominal = max(link.capacity_ab_mbps, link.capacity_ba_mbps)
    eff = max(deg.effective_capacity_ab_mbps, deg.effective_capacity_ba_mbps)
    if eff > 0 and nominal > 0:
        return min(1.0, eff / nominal)
    return 1.0


def capacity_moments(topology: Topology, since: float, until: float) -> list[tuple[float, str]]:
    """Moments in (since, until] at which an announced capacity window starts or ends."""
    out: list[tuple[float, str]] = []
    for lid, link in topology.links.items():
        for i, w in enumerate(link.capacity_schedule):
            for t, what in ((w.start, "starts"), (w.end, "ends")):
                if since < t <= until:
                    out.append((t, f"link {lid} capacity window {i} {what}"))
    return sorted(out)
