"""Inventory events: keys on the compacted topic, validity rules, and the mapping between
events and the engine's `Topology` (pure)."""

from __future__ import annotations

from collections.abc import Container

from tandem.engine.topology import Topology
from tandem.v1 import inventory_pb2
from tandem.validation import INVALID, UNKNOWN_REFERENCE, check_meta, check_ranges, require


_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def site_key(site_id: str) -> str:
    return f"site/{site_id}"


def link_key(link_id: str) -> str:
    return f"link/{link_id}"


def inventory_key(event: inventory_pb2.InventoryEvent) -> str:
    """The compaction key: the element the event is about."""
    which = event.WhichOneof("change")
    if which == "site":
        return site_key(event.site.site_id)
    if which == "link":
        return link_key(event.link.link_id)
    if which == "observed":
        o = event.observed
        return f"observed/{o.observer_site}/{o.datapath_id}/{o.port_no}"
    if which == "removed":
        kind = event.removed.kind
        prefix = "site" if kind == inventory_pb2.ElementRemoved.KIND_SITE else "link"
        return f"{prefix}/{event.removed.id}"
    raise ValueError("inventory event without a change")


def check_inventory(event: inventory_pb2.InventoryEvent, known_sites: Container[str],
                    known_links: Container[str] | None = None, now: float | None = None) -> None:
    """Raise InvalidEvent unless the event is well formed and refers only to known sites (and,
    for a removal, to a known element when `known_links` is given)."""
    check_meta(event, now)
    check_ranges(event)
    which = event.WhichOneof("change")
    require(which is not None, INVALID, "change: none of site, link, removed, observed is set")
    if which == "site":
        sid = event.site.site_id
        require(bool(sid), INVALID, "site.site_id: empty")
        # A site id names its control units' command topics.
        require(set(sid) <= _ID_CHARS and len(sid) <= 100, INVALID,
                f"site.site_id = {sid!r}: only letters, digits, '.', '_' and '-' (at most 100)")
    elif which == "link":
        link = event.link
        require(bool(link.link_id), INVALID, "link.link_id: empty")
        require(bool(link.site_a) and bool(link.site_b), INVALID, "link.site_a/site_b: empty")
        require(link.site_a != link.site_b, INVALID,
                f"link.site_b = {link.site_b!r}: a link joins two different sites")
        for end in ("site_a", "site_b"):
            site = getattr(link, end)
            require(site in known_sites, UNKNOWN_REFERENCE,
                    f"link.{end} = {site!r}: no such site in the inventory")
    elif which == "observed":
        o = event.observed
        require(o.observer_site in known_sites, UNKNOWN_REFERENCE,
                f"observed.observer_site = {o.observer_site!r}: no such site in the inventory")
        require(o.status != inventory_pb2.LinkObservation.STATUS_UNSPECIFIED, INVALID,
                "observed.status: unspecified")
    else:
        require(bool(event.removed.id), INVALID, "removed.id: empty")
        require(event.removed.kind != inventory_pb2.ElementRemoved.KIND_UNSPECIFIED, INVALID,
                "removed.kind: unspecified")
        if known_links is not None:
            site = event.removed.kind == inventory_pb2.ElementRemoved.KIND_SITE
            require(event.removed.id in (known_sites if site else known_links), UNKNOWN_REFERENCE,
                    f"removed.id = {event.removed.id!r}: no such {'site' if site else 'link'} "
                    "in the inventory")


# ------------------------------------------------------------------ engine topology → events
def inventory_events(topology: Topology, source: str = "inventory/loader",
                     ports: dict[str, tuple[int, int]] | None = None,
                     dpids: dict[str, int] | None = None) -> list[inventory_pb2.InventoryEvent]:
    """A topology as the inventory events that would build it (sites first, then links),
    with the switch ports and datapath ids of an SDN-controlled WAN when given."""
    from tandem.events import new_meta
    from tandem.pbconvert import link_to_pb, site_to_pb

    out = []
    for sid, s in topology.sites.items():
        site = site_to_pb(s)
        site.datapath_id = (dpids or {}).get(sid, 0)
        out.append(inventory_pb2.InventoryEvent(meta=new_meta(source), site=site))
    for lid, ln in topology.links.items():
        link = link_to_pb(ln)
        link.port_a, link.port_b = (ports or {}).get(lid, (0, 0))
        out.append(inventory_pb2.InventoryEvent(meta=new_meta(source), link=link))
    return out


def observation_alarm(obs: inventory_pb2.LinkObservation,
                      previous: inventory_pb2.LinkObservation | None) -> tuple[bool, str] | None:
    """(cleared, text) when an LLDP observation changes status; None when nothing changed."""
    if previous is not None and previous.status == obs.status:
        return None
    if obs.status == inventory_pb2.LinkObservation.STATUS_OK:
        if previous is None:
            return None
        return True, f"link {obs.link_id} seen as declared again from {obs.observer_site}"
    where = f"{obs.observer_site} dp {obs.datapath_id:#x} port {obs.port_no}"
    if obs.status == inventory_pb2.LinkObservation.STATUS_MISSING:
        return False, f"declared link {obs.link_id} not heard on {where}"
    if obs.status == inventory_pb2.LinkObservation.STATUS_MISWIRED:
        return False, (f"link {obs.link_id} miswired on {where}: heard {obs.peer_site} port "
                       f"{obs.peer_port_no}, expected {obs.expected_peer_site} port "
                       f"{obs.expected_peer_port_no}")
    return False, f"undeclared link on {where}: heard {obs.peer_site} port {obs.peer_port_no}"
