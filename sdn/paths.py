"""Site-level paths → per-site commands (pure).

Two forms, for two kinds of sender:
- in the core's terms (`site_crossings`, `crossing_commands`): per site, the link the traffic
  arrives by and the link it leaves by (`SiteCrossing`; "" = the site's local attachment). No
  ports: each site's control unit resolves links to its switch's ports from the inventory
  (`tandem.sdn.crossing`). The core builds its crossings itself (`tandem.steps`); this is the
  same thing for tests and tools that stand in for it;
- switch-level (`install_commands`): hops with datapath ids and ports from the emulated WAN's
  layout, for the hand-driven tools and benchmarks (`handdrive`, `bench/sdn_flows`), which
  drive switches directly. A reroute is never switch-level: the core installs a new
  reservation and removes the old one, in the one make-before-break order (`tandem.steps`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

HOST_PORT = 1


@dataclass(frozen=True, slots=True)
class LinkPorts:
    link_id: str
    site_a: str
    port_a: int
    site_b: str
    port_b: int

    def port_of(self, site: str) -> int:
        if site == self.site_a:
            return self.port_a
        if site == self.site_b:
            return self.port_b
        raise KeyError(f"site {site!r} is not an endpoint of link {self.link_id!r}")

    def other(self, site: str) -> str:
        return self.site_b if site == self.site_a else self.site_a


@dataclass(frozen=True, slots=True)
class WanLayout:
    dpids: Mapping[str, int]
    links: Mapping[str, LinkPorts]
    host_port: int = HOST_PORT

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> WanLayout:
        return WanLayout(
            dpids={s: int(v["dpid"]) for s, v in d["sites"].items()},
            links={
                lid: LinkPorts(lid, v["site_a"], int(v["port_a"]), v["site_b"], int(v["port_b"]))
                for lid, v in d["links"].items()
            },
            host_port=int(d.get("host_port", HOST_PORT)),
        )

    @staticmethod
    def from_inventory(sites: Sequence[Any], links: Sequence[Any]) -> WanLayout:
        """From `tandem.v1.Site` / `tandem.v1.Link` messages (datapath ids and ports as
        published by `tandem infra wan up --broker`); links without ports are left out."""
        return WanLayout(
            dpids={s.site_id: int(s.datapath_id) for s in sites if s.datapath_id},
            links={l.link_id: LinkPorts(l.link_id, l.site_a, int(l.port_a), l.site_b,
                                        int(l.port_b)) for l in links if l.port_a and l.port_b},
        )

    def port_to_link(self, site: str) -> dict[int, str]:
        return {
            l.port_of(site): lid for lid, l in self.links.items() if site in (l.site_a, l.site_b)
        }


def site_hops(layout: WanLayout, link_path: Sequence[str], src: str) -> list[tuple[str, int, int]]:
    """[(site, in_port, out_port)] from host port at `src` over `link_path` to the last
    site's host port."""
    hops: list[tuple[str, int, int]] = []
    site, in_port = src, layout.host_port
    for lid in link_path:
        link = layout.links[lid]
        hops.append((site, in_port, link.port_of(site)))
        nxt = link.other(site)
        in_port = link.port_of(nxt)
        site = nxt
    hops.append((site, in_port, layout.host_port))
    return hops


def install_commands(
    layout: WanLayout,
    *,
    reservation_id: str,
    generation: int,
    src: str,
    link_path: Sequence[str],
    ipv4_src: str = "",
    ipv4_dst: str = "",
    ip_proto: int = 0,
    rate_kbps: int = 0,
    correlation_id: str = "",
) -> dict[str, Any]:
    """site → `tandem.v1.SdnCommand` (install) for every site on the path."""
    from tandem.v1 import commands_pb2 as c

    out: dict[str, Any] = {}
    for i, (site, inp, outp) in enumerate(site_hops(layout, link_path, src)):
        cmd = c.SdnCommand(command_id=f"{reservation_id}/g{generation}/{site}", site_id=site)
        cmd.meta.correlation_id = correlation_id or reservation_id
        cmd.meta.source = "tandem/sdn-paths"
        ins = cmd.install
        ins.reservation_id = reservation_id
        ins.generation = generation
        ins.match.ipv4_src = ipv4_src
        ins.match.ipv4_dst = ipv4_dst
        ins.match.ip_proto = ip_proto
        ins.hops.add(datapath_id=layout.dpids[site], in_port=inp, out_port=outp)
        ins.rate_kbps = rate_kbps
        ins.ingress = i == 0
        out[site] = cmd
    return out


def site_crossings(sites: Sequence[str], links: Sequence[str]) -> dict[str, tuple[str, str]]:
    """A reservation's site path → {site: (in_link_id, out_link_id)} in path order; "" is
    the site's local attachment (in at the first site, out at the last). Raises ValueError
    when `links` does not join `sites` one by one or a site repeats (a site crossed twice
    would need two entries in one command)."""
    if len(sites) < 2 or len(links) != len(sites) - 1:
        raise ValueError(f"a site path of {len(sites)} sites needs {max(len(sites) - 1, 1)} "
                         f"links, got {len(links)}: sites {list(sites)}, links {list(links)}")
    if len(set(sites)) != len(sites):
        raise ValueError(f"site path {list(sites)} crosses a site twice")
    return {site: (links[i - 1] if i > 0 else "", links[i] if i < len(links) else "")
            for i, site in enumerate(sites)}


def crossing_commands(
    *,
    reservation_id: str,
    generation: int,
    sites: Sequence[str],
    links: Sequence[str],
    workload_id: str = "",
    ipv4_src: str = "",
    ipv4_dst: str = "",
    ip_proto: int = 0,
    rate_kbps: int = 0,
) -> dict[str, Any]:
    """site → `tandem.v1.SdnCommand` (install, by crossing: links only) for every site of
    the path, in path order — what the core sends (`tandem.steps`)."""
    from tandem.v1 import commands_pb2 as c

    out: dict[str, Any] = {}
    for site, (in_link, out_link) in site_crossings(sites, links).items():
        cmd = c.SdnCommand(command_id=f"install/{reservation_id}/g{generation}/{site}",
                           site_id=site)
        cmd.meta.correlation_id = workload_id or reservation_id
        cmd.meta.source = "tandem/sdn-paths"
        ins = cmd.install
        ins.reservation_id, ins.generation, ins.workload_id = reservation_id, generation, \
            workload_id
        ins.match.ipv4_src, ins.match.ipv4_dst, ins.match.ip_proto = ipv4_src, ipv4_dst, ip_proto
        ins.crossing.in_link_id, ins.crossing.out_link_id = in_link, out_link
        ins.rate_kbps = rate_kbps
        ins.ingress = not in_link
        out[site] = cmd
    return out


def remove_command(site: str, reservation_id: str, generation: int = 0) -> Any:
    from tandem.v1 import commands_pb2 as c

    cmd = c.SdnCommand(command_id=f"{reservation_id}/rm{generation}/{site}", site_id=site)
    cmd.remove.reservation_id = reservation_id
    cmd.remove.generation = generation
    return cmd


def shortest_link_path(layout: WanLayout, src: str, dst: str,
                       exclude: Sequence[str] = ()) -> list[str]:
    """Fewest-hops link path avoiding `exclude`; [] if none. The engine's one path search
    (`tandem.engine.paths`) on the layout's sites and links, for the drivers that stand in for
    the engine (the hand driver, tests)."""
    from tandem.engine.paths import finder
    from tandem.engine.topology import Link, Site, Topology

    topo = Topology(sites={s: Site(s) for s in layout.dpids},
                    links={l.link_id: Link(l.link_id, l.site_a, l.site_b, 1.0, 1.0)
                           for l in layout.links.values()})
    if src not in topo.sites or dst not in topo.sites:
        return []
    path = finder(topo, "hops").shortest(src, dst, exclude_links=exclude)
    return [] if path is None else list(path.links)
