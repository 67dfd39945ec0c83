"""Where a reservation crosses this site, in links → the switch ports of this site (pure).

Why the unit resolves ports and not the core: the core speaks sites, links and workloads
only (an `InstallPath` names the link the traffic arrives by and the link it leaves by, an
empty one meaning the site's local attachment); which switch port carries a link is a fact of
the site, published to the inventory by whoever wired it (`tandem infra wan up --broker`) and
checked by the unit's own LLDP. So the unit folds that inventory (`PortBook`) and turns each
crossing into one switch-level `Hop` on the site's WAN switch.

A crossing that cannot be resolved is refused with an error naming the link and what is
missing (no such link, a link that does not touch this site, no port known for it yet, no
datapath id or attachment port for the site): the command is acknowledged FAILED and nothing
of it is installed — never half a path, never silently.

Sources, in order of precedence: inventory events (`Site.datapath_id`,
`Site.attachment_port`, `Link.port_a/port_b`; a removed link is unknown even if the WAN
layout has it) and then, for what the inventory leaves at 0 or has not said, the local
emulated WAN's layout (`paths.WanLayout`, the state file of `tandem infra wan`), whose host
port is the attachment port.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp

from tandem.sdn.intents import Hop, PathIntent, TrafficMatch, match_key


class CrossingError(ValueError):
    """A crossing this site cannot turn into switch ports (the message names the link)."""


# link id → (site_a, port_a, site_b, port_b); a port of 0 is "not known"
LinkEnds = tuple[str, int, str, int]
Resolve = Callable[[str, str], Hop]


@dataclass(slots=True)
class PortBook:
    """What this site's unit knows about its switch ports: a fold of inventory events over
    the WAN layout. `resolve(in_link, out_link)` gives the hop or raises `CrossingError`."""

    site: str
    dpid: int = 0
    attachment_port: int = 0
    links: dict[str, LinkEnds] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    layout_dpid: int = 0
    layout_attachment_port: int = 0
    layout_links: dict[str, LinkEnds] = field(default_factory=dict)

    # ------------------------------------------------------------------ fold
    def learn_event(self, ev: Any) -> None:
        """Fold one `tandem.v1.InventoryEvent` (other sites' facts and observations are
        ignored: only this site's switch and the links touching it matter here)."""
        which = ev.WhichOneof("change")
        if which == "site" and ev.site.site_id == self.site:
            self.dpid = int(ev.site.datapath_id)
            self.attachment_port = int(ev.site.attachment_port)
        elif which == "link":
            l = ev.link
            self.links[l.link_id] = (l.site_a, int(l.port_a), l.site_b, int(l.port_b))
            self.removed.discard(l.link_id)
        elif which == "removed":
            if ev.removed.kind == ev.removed.KIND_LINK:
                self.links.pop(ev.removed.id, None)
                self.removed.add(ev.removed.id)
            elif ev.removed.kind == ev.removed.KIND_SITE and ev.removed.id == self.site:
                self.dpid = self.attachment_port = 0

    def learn_layout(self, layout: Any) -> None:
        """The emulated WAN's layout (`tandem.sdn.paths.WanLayout`): the fallback."""
        self.layout_dpid = int(layout.dpids.get(self.site, 0))
        self.layout_attachment_port = int(layout.host_port)
        self.layout_links = {lid: (l.site_a, int(l.port_a), l.site_b, int(l.port_b))
                             for lid, l in layout.links.items()}

    # ------------------------------------------------------------------ resolution
    def datapath_id(self) -> int:
        dp = self.dpid or self.layout_dpid
        if not dp:
            raise CrossingError(f"site {self.site} has no datapath id yet (inventory "
                                "site.datapath_id is 0 or not read, and no WAN layout names it)")
        return dp

    def local_port(self) -> int:
        port = self.attachment_port or self.layout_attachment_port
        if not port:
            raise CrossingError(f"site {self.site} has no attachment port yet (inventory "
                                "site.attachment_port is 0 or not read, and no WAN layout)")
        return port

    def link_port(self, link_id: str, where: str) -> int:
        """The port of `link_id` on this site's switch; `where` names the field."""
        ends = self.links.get(link_id)
        source = "inventory"
        if ends is None and link_id not in self.removed:
            ends, source = self.layout_links.get(link_id), "WAN layout"
        if ends is None:
            why = ("was removed from the inventory" if link_id in self.removed
                   else "is not in the inventory (nor in the WAN layout)")
            raise CrossingError(f"{where} {link_id!r}: link {why}")
        site_a, port_a, site_b, port_b = ends
        if self.site not in (site_a, site_b):
            raise CrossingError(f"{where} {link_id!r}: the link joins {site_a} and {site_b}, "
                                f"not this site {self.site}")
        end = "port_a" if site_a == self.site else "port_b"
        port = port_a if site_a == self.site else port_b
        if not port and source == "inventory":  # declared without ports: the layout may know
            lay = self.layout_links.get(link_id)
            if lay is not None and self.site in (lay[0], lay[2]):
                port, source = (lay[1] if lay[0] == self.site else lay[3]), "WAN layout"
        if not port:
            raise CrossingError(f"{where} {link_id!r}: no switch port known for it at "
                                f"{self.site} yet (inventory {end} is 0 or not read, and no "
                                "WAN layout gives it)")
        if port > ofp.OFPP_MAX:
            raise CrossingError(f"{where} {link_id!r}: {source} {end} = {port} is above "
                                "OFPP_MAX")
        return port

    def resolve(self, in_link: str, out_link: str) -> Hop:
        """The hop of a crossing: "" is the local attachment. Raises CrossingError."""
        if not in_link and not out_link:
            raise CrossingError("crossing names neither in_link_id nor out_link_id (traffic "
                                "from the attachment to itself never crosses the WAN)")
        if in_link == out_link:
            raise CrossingError(f"crossing.in_link_id and out_link_id are both {in_link!r}")
        in_port = (self.link_port(in_link, "crossing.in_link_id") if in_link
                   else self.local_port())
        out_port = (self.link_port(out_link, "crossing.out_link_id") if out_link
                    else self.local_port())
        return Hop(self.datapath_id(), in_port, out_port)


# ---------------------------------------------------------------- command → intent


def intent_from_proto(install: Any, resolve: Resolve | None = None) -> PathIntent:
    """`tandem.v1.InstallPath` → PathIntent; raises ValueError naming the bad field.

    The path is given either by `crossing` (the core: links, resolved to this site's ports by
    `resolve`) or by `hops` (hand-driven tools: switch ports already), never both."""
    if not install.reservation_id:
        raise ValueError("install.reservation_id is empty")
    has_crossing = install.HasField("crossing")
    if has_crossing and install.hops:
        raise ValueError("install gives both crossing (links) and hops (ports); give one")
    hops: list[Hop] = []
    ingress = bool(install.ingress)
    if has_crossing:
        cr = install.crossing
        if install.ingress and cr.in_link_id:
            raise ValueError(f"install.ingress is set but crossing.in_link_id = "
                             f"{cr.in_link_id!r} says the traffic arrives by a link")
        if resolve is None:
            raise CrossingError("install gives a crossing, but this unit has no port book to "
                                "resolve links with")
        hops.append(resolve(cr.in_link_id, cr.out_link_id))
        ingress = not cr.in_link_id
    elif not install.hops:
        raise ValueError("install gives neither crossing nor hops")
    for i, h in enumerate(install.hops):
        if h.datapath_id <= 0 or h.in_port <= 0 or h.out_port <= 0:
            raise ValueError(f"install.hops[{i}]: datapath_id, in_port, out_port must be > 0")
        if h.in_port > ofp.OFPP_MAX or h.out_port > ofp.OFPP_MAX:
            raise ValueError(f"install.hops[{i}]: port number above OFPP_MAX")
        hops.append(Hop(int(h.datapath_id), int(h.in_port), int(h.out_port)))
    m = install.match
    tm = TrafficMatch(m.ipv4_src, m.ipv4_dst, int(m.ip_proto), int(m.dscp))
    if tm.dscp > 63:
        raise ValueError("install.match.dscp above 63")
    if tm.ip_proto > 255:
        raise ValueError("install.match.ip_proto above 255")
    for h in hops:
        match_key(h.in_port, tm)  # validates addresses and blocks
    if install.rate_kbps > 0xFFFFFFFF:
        raise ValueError("install.rate_kbps above 2^32-1")
    return PathIntent(
        reservation_id=install.reservation_id,
        generation=int(install.generation),
        match=tm,
        hops=tuple(hops),
        rate_kbps=int(install.rate_kbps),
        ingress=ingress,
    )
