"""The federation as the engine sees it: sites, WAN links and their state.

Immutable values. The stream processors fold inventory and link-state events into a new
`Topology` (see `with_site`, `with_link`, `without`); the engine never mutates one, so any
decision can be recomputed from the same value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from types import MappingProxyType


class SiteState(str, Enum):
    ACTIVE = "active"
    DRAINING = "draining"
    DOWN = "down"


class LinkKind(str, Enum):
    FIBRE = "fibre"
    MPLS = "mpls"
    LAN_GATEWAY = "lan_gateway"
    SATELLITE = "satellite"


class OperState(str, Enum):
    UP = "up"
    DOWN = "down"
    DEGRADED = "degraded"


@dataclass(frozen=True, slots=True)
class CapacityWindow:
    """Capacity known in advance for [start, end) seconds since the epoch (satellite links)."""

    start: float
    end: float
    capacity_mbps: float


@dataclass(frozen=True, slots=True)
class Site:
    site_id: str
    name: str = ""
    latitude: float = 0.0
    longitude: float = 0.0
    # ISO 3166-1 alpha-2 country code.
    jurisdiction: str = ""
    vcpus: float = 0.0
    memory_gib: float = 0.0
    storage_gib: float = 0.0
    hypervisors: frozenset[str] = frozenset({"vsphere", "kvm"})
    cost_per_vcpu_hour: float = 0.0
    state: SiteState = SiteState.ACTIVE


@dataclass(frozen=True, slots=True)
class Link:
    """A bidirectional WAN link with a capacity per direction (a→b and b→a)."""

    link_id: str
    a: str
    b: str
    capacity_ab_mbps: float
    capacity_ba_mbps: float
    latency_ms: float = 0.0
    loss: float = 0.0
    kind: LinkKind = LinkKind.FIBRE
    # Countries the link physically crosses (its endpoints' countries at least).
    jurisdictions: frozenset[str] = frozenset()
    cost_per_mbps: float = 0.0
    admin_up: bool = True
    oper_state: OperState = OperState.UP
    # Usable fraction of capacity while degraded (1.0 when not degraded).
    capacity_factor: float = 1.0
    capacity_schedule: tuple[CapacityWindow, ...] = ()

    @property
    def usable(self) -> bool:
        return self.admin_up and self.oper_state is not OperState.DOWN

    def capacity_from(self, site_id: str, at: float | None = None) -> float:
        """Usable capacity in Mbps for traffic leaving `site_id` over this link, at time `at`."""
        if not self.usable:
            return 0.0
        if site_id == self.a:
            base = self.capacity_ab_mbps
        elif site_id == self.b:
            base = self.capacity_ba_mbps
        else:
            raise KeyError(f"site {site_id!r} is not an endpoint of link {self.link_id!r}")
        if at is not None:
            for w in self.capacity_schedule:
                if w.start <= at < w.end:
                    base = min(base, w.capacity_mbps)
        return base * self.capacity_factor

    def other(self, site_id: str) -> str:
        if site_id == self.a:
            return self.b
        if site_id == self.b:
            return self.a
        raise KeyError(f"site {site_id!r} is not an endpoint of link {self.link_id!r}")


def _frozen(d: Mapping[str, object]) -> Mapping[str, object]:
    return MappingProxyType(dict(d))


@dataclass(frozen=True, slots=True)
class Topology:
    """Sites and links, keyed by id. Iteration orders are sorted ids (determinism)."""

    sites: Mapping[str, Site] = field(default_factory=dict)
    links: Mapping[str, Link] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sites", _frozen(dict(sorted(self.sites.items()))))
        object.__setattr__(self, "links", _frozen(dict(sorted(self.links.items()))))

    def with_site(self, site: Site) -> Topology:
        return replace(self, sites={**self.sites, site.site_id: site})

    def with_link(self, link: Link) -> Topology:
        return replace(self, links={**self.links, link.link_id: link})

    def without_site(self, site_id: str) -> Topology:
        return replace(
            self,
            sites={k: v for k, v in self.sites.items() if k != site_id},
            links={k: v for k, v in self.links.items() if site_id not in (v.a, v.b)},
        )

    def without_link(self, link_id: str) -> Topology:
        return replace(self, links={k: v for k, v in self.links.items() if k != link_id})

    def links_of(self, site_id: str) -> Iterator[Link]:
        for link in self.links.values():
            if site_id in (link.a, link.b):
                yield link
