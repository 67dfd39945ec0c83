"""What a control unit learns about its site and tells Kafka about its switches.

Why apart from the worker (`tandem.sdn.unit`): these are the unit's observations — port
status (link state), port counters (telemetry), LLDP (discovery) — and its knowledge of the
site's wiring folded from the inventory (which port carries which link, the datapath id and
the attachment port, `crossing.PortBook`). They run on the os-ken event thread, poller threads
and the Kafka thread, never on the worker, and share only `declared`/`ports` (under a lock)
with it. `SiteFacts` is a mixin of `ControlUnit`, which provides the attributes listed below.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp

from tandem.events import new_meta
from tandem.sdn import lldp
from tandem.sdn.app import SwitchChannel, SwitchGone
from tandem.sdn.crossing import PortBook
from tandem.sdn.intents import Hop
from tandem.v1 import inventory_pb2 as inv
from tandem.v1 import link_state_pb2 as ls
from tandem.v1 import telemetry_pb2 as tm

log = logging.getLogger("tandem.sdn.unit")


class SiteFacts:
    """Switch observations out, site wiring in (mixin of `ControlUnit`)."""

    site: str
    cfg: Any
    publish: Callable[[str, str, Any], None]
    channels: dict[int, SwitchChannel]
    stopping: threading.Event
    # port → (link_id, peer site, peer port), from inventory / the WAN layout (LLDP, telemetry)
    declared: dict[int, tuple[str, str, int]]
    # links → ports, datapath id, attachment port (crossing resolution)
    ports: PortBook
    _ports_lock: threading.Lock
    _heard: dict[tuple[int, int], tuple[lldp.Heard, float]]
    _reported: dict[tuple[int, int], tuple[str, Any]]

    def _init_facts(self) -> None:
        self.declared = {}
        self.ports = PortBook(self.site)
        self._ports_lock = threading.Lock()
        self._heard = {}
        self._reported = {}

    def resolve(self, in_link: str, out_link: str) -> Hop:
        """A crossing → the hop on this site's switch (raises `CrossingError`)."""
        with self._ports_lock:
            return self.ports.resolve(in_link, out_link)

    def _attachment_port(self) -> int:
        with self._ports_lock:
            return self.ports.attachment_port or self.ports.layout_attachment_port or 1

    # ------------------------------------------------------------------ from os-ken
    def port_status(self, ch: SwitchChannel, msg: Any) -> None:
        desc = msg.desc
        down = (msg.reason == ofp.OFPPR_DELETE or bool(desc.state & ofp.OFPPS_LINK_DOWN)
                or bool(desc.config & ofp.OFPPC_PORT_DOWN))
        if down:
            ch.ports.discard(desc.port_no)
        else:
            ch.ports.add(desc.port_no)
        link_id = self.declared.get(desc.port_no, ("", "", 0))[0]
        ev = ls.LinkStateEvent(
            meta=new_meta(f"sdn/{self.site}"), link_id=link_id,
            state=ls.OPER_STATE_DOWN if down else ls.OPER_STATE_UP,
            cause=f"port {'down' if down else 'up'} on {self.site} dp {ch.dpid:#x} port "
                  f"{desc.port_no}",
        )
        log.info("port status: %s (link %s)", ev.cause, link_id or "?")
        self.publish("link_state", link_id or f"{self.site}/{desc.port_no}", ev)

    def packet_in(self, ch: SwitchChannel, in_port: int, data: bytes) -> None:
        heard = lldp.parse_lldp(data)
        if heard is not None:
            self._heard[(ch.dpid, in_port)] = (heard, time.monotonic())

    # ------------------------------------------------------------------ pollers
    def _poll_stats(self) -> None:
        while not self.stopping.wait(self.cfg.stats_interval):
            for ch in list(self.channels.values()):
                try:
                    stats = ch.port_stats()
                except SwitchGone:
                    continue
                for s in stats:
                    if s.port_no > ofp.OFPP_MAX:
                        continue
                    sample = tm.TelemetrySample(meta=new_meta(f"sdn/{self.site}"), port=tm.PortSample(
                        datapath_id=ch.dpid, port_no=s.port_no, rx_bytes=s.rx_bytes,
                        tx_bytes=s.tx_bytes, rx_packets=s.rx_packets, tx_packets=s.tx_packets,
                        rx_dropped=s.rx_dropped, tx_dropped=s.tx_dropped,
                        duration_s=s.duration_sec + s.duration_nsec / 1e9))
                    key = self.declared.get(s.port_no, (self.site,))[0] or self.site
                    self.publish("telemetry", key, sample)

    def _poll_lldp(self) -> None:
        while not self.stopping.wait(self.cfg.lldp_interval):
            local = self._attachment_port()
            for ch in list(self.channels.values()):
                for port in sorted(ch.ports):
                    if port == local or port > ofp.OFPP_MAX:
                        continue  # the site's local attachment, not a WAN link
                    try:
                        ch.packet_out(port, lldp.build_lldp(self.site, ch.dpid, port))
                    except SwitchGone:
                        break
            self._report_links()

    def _report_links(self) -> None:
        hold = 3 * self.cfg.lldp_interval + 1.0
        now = time.monotonic()
        for ch in list(self.channels.values()):
            ports = set(self.declared) | {p for (dp, p) in self._heard if dp == ch.dpid}
            for port in sorted(ports):
                h = self._heard.get((ch.dpid, port))
                heard = h[0] if h and now - h[1] <= hold else None
                decl = self.declared.get(port)
                status = lldp.classify((decl[1], decl[2]) if decl else None, heard)
                if status is None or self._reported.get((ch.dpid, port)) == (status, heard):
                    continue
                self._reported[(ch.dpid, port)] = (status, heard)
                obs = inv.LinkObservation(
                    observer_site=self.site, datapath_id=ch.dpid, port_no=port,
                    link_id=decl[0] if decl else "",
                    peer_site=heard.peer_site if heard else "",
                    peer_datapath_id=heard.peer_dpid if heard else 0,
                    peer_port_no=heard.peer_port if heard else 0,
                    expected_peer_site=decl[1] if decl else "",
                    expected_peer_port_no=decl[2] if decl else 0,
                    status=inv.LinkObservation.Status.Value(f"STATUS_{status.upper()}"),
                )
                if status != lldp.OK:
                    log.warning("LLDP on %s port %d: %s (heard %s, declared %s)", self.site,
                                port, status, heard, decl)
                self.publish("inventory", f"observed/{self.site}/{ch.dpid}/{port}",
                             inv.InventoryEvent(meta=new_meta(f"sdn/{self.site}"), observed=obs))

    # ------------------------------------------------------------------ inventory (Kafka thread)
    def learn_inventory(self, ev: Any, site_dpids: dict[str, int]) -> None:
        """Fold an inventory event into the declared port → link map of this site and into
        its port book (crossing resolution)."""
        with self._ports_lock:
            self.ports.learn_event(ev)
        which = ev.WhichOneof("change")
        if which == "site":
            site_dpids[ev.site.site_id] = ev.site.datapath_id
        elif which == "link":
            l = ev.link
            if not (l.port_a and l.port_b):
                return
            peers = lldp.expected_peers(self.site, {l.link_id: (l.site_a, l.port_a, l.site_b,
                                                                l.port_b)})
            for port in [p for p, v in self.declared.items() if v[0] == l.link_id]:
                del self.declared[port]
            self.declared.update(peers)
        elif which == "removed" and ev.removed.kind == ev.removed.KIND_LINK:
            for port in [p for p, v in self.declared.items() if v[0] == ev.removed.id]:
                del self.declared[port]

    def learn_layout(self, layout: Any) -> None:
        """Declared links from a `WanLayout` (the local WAN state file); the port book's
        fallback when the inventory does not (yet) say."""
        with self._ports_lock:
            self.ports.learn_layout(layout)
        self.declared.update(lldp.expected_peers(self.site, {
            lid: (l.site_a, l.port_a, l.site_b, l.port_b) for lid, l in layout.links.items()}))
