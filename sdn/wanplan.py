"""Topology → the emulated WAN's names, ports and rates (pure; executed by `tandem infra wan`).

Why deterministic: the port numbers chosen here are what path intents name, what inventory
events publish and what the tests assert on, so the same topology must always give the same
layout. Sites are numbered in sorted-id order (datapath id = number), links likewise; on each
switch port 1 is the site's host and the site's links take ports 2, 3, ... in sorted link-id
order. Every name we create carries the `tdm` prefix so `wan down` can never touch anything
it did not make.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from tandem.engine.topology import Topology
from tandem.sdn.paths import HOST_PORT

MAX_SITES = 250
IFNAMSIZ = 15
DEFAULT_OF_BASE = 16653
_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True, slots=True)
class SitePlan:
    site_id: str
    index: int
    dpid: int
    bridge: str
    netns: str
    host_if: str  # inside the namespace
    host_peer: str  # on the bridge (port 1)
    host_ip: str
    host_mac: str
    of_port: int


@dataclass(frozen=True, slots=True)
class LinkPlan:
    link_id: str
    index: int
    site_a: str
    site_b: str
    port_a: int
    port_b: int
    veth_a: str
    veth_b: str
    rate_ab_kbit: int  # shaped on veth_a egress (traffic a→b)
    rate_ba_kbit: int


@dataclass(frozen=True, slots=True)
class WanPlan:
    sites: tuple[SitePlan, ...]
    links: tuple[LinkPlan, ...]
    scale: float

    def to_json(self) -> dict[str, Any]:
        """The layout part of the state file (also readable by `paths.WanLayout.from_json`)."""
        return {
            "scale": self.scale,
            "host_port": HOST_PORT,
            "sites": {s.site_id: asdict(s) for s in self.sites},
            "links": {l.link_id: asdict(l) for l in self.links},
        }


def _name(prefix: str, site_id: str, index: int) -> str:
    cand = f"{prefix}{site_id}"
    if len(cand) <= IFNAMSIZ and _SAFE.match(site_id):
        return cand
    return f"{prefix}s{index}"


def plan_wan(topo: Topology, scale: float = 1.0, of_base: int = DEFAULT_OF_BASE) -> WanPlan:
    """Raises ValueError with the offending element when the topology cannot be emulated."""
    if not topo.sites:
        raise ValueError("topology has no sites")
    if len(topo.sites) > MAX_SITES:
        raise ValueError(f"topology has {len(topo.sites)} sites; the emulated WAN takes "
                         f"at most {MAX_SITES}")
    if not scale > 0:
        raise ValueError(f"--scale must be > 0 (got {scale})")
    site_ids = sorted(topo.sites)
    index = {s: i + 1 for i, s in enumerate(site_ids)}
    link_ids = sorted(topo.links)
    ports: dict[tuple[str, str], int] = {}
    for s in site_ids:
        mine = [lid for lid in link_ids if s in (topo.links[lid].a, topo.links[lid].b)]
        for k, lid in enumerate(mine):
            if topo.links[lid].a == topo.links[lid].b:
                raise ValueError(f"link {lid!r} connects site {s!r} to itself")
            ports[(s, lid)] = HOST_PORT + 1 + k
    sites = []
    names: set[str] = set()
    for s in site_ids:
        i = index[s]
        bridge = _name("tdm-", s, i)
        if bridge in names:
            bridge = f"tdm-s{i}"
        names.add(bridge)
        sites.append(SitePlan(
            site_id=s, index=i, dpid=i, bridge=bridge, netns=bridge,
            host_if=f"tdmh{i}n", host_peer=f"tdmh{i}b",
            host_ip=f"10.77.{i}.1", host_mac=f"02:7d:00:00:{i:02x}:01",
            of_port=of_base + i - 1,
        ))
    links = []
    for j, lid in enumerate(link_ids, start=1):
        l = topo.links[lid]
        rate_ab = int(round(l.capacity_ab_mbps * scale * 1000))
        rate_ba = int(round(l.capacity_ba_mbps * scale * 1000))
        if rate_ab <= 0 and rate_ba <= 0:
            raise ValueError(f"link {lid!r}: capacity × scale rounds to 0 kbit/s")
        links.append(LinkPlan(
            link_id=lid, index=j, site_a=l.a, site_b=l.b,
            port_a=ports[(l.a, lid)], port_b=ports[(l.b, lid)],
            veth_a=f"tdmv{j}a", veth_b=f"tdmv{j}b",
            rate_ab_kbit=max(rate_ab, 8), rate_ba_kbit=max(rate_ba, 8),
        ))
    return WanPlan(tuple(sites), tuple(links), scale)
