"""The thin os-ken application: OpenFlow events in, messages out; no policy, no Kafka.

Why thin: everything that decides (what to install, what to repair) is pure and tested on the
fake table; this module only (a) attaches the datapath to messages built with
``datapath=None`` and sends them, (b) turns barrier/error/stats replies into answers a worker
thread can wait for (`SwitchChannel`), and (c) forwards switch events to the control unit
(`tandem.sdn.unit.ControlUnit`), which the entry point hands over as `TandemSdnApp.unit`.

Threads (os-ken native hub): each switch connection has a receive thread that queues events
for this app's event thread; the unit's worker threads call `SwitchChannel` methods and block
on replies, which the event thread delivers.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

log = logging.getLogger("tandem.sdn.app")


class SwitchGone(RuntimeError):
    """The switch disconnected while we were talking to it."""


class SwitchChannel:
    """One connected switch, as seen by worker threads: send batches, await barriers/stats."""

    def __init__(self, dp: Any) -> None:
        self.dp = dp
        self.dpid: int = int(dp.id)
        self.alive = True
        self.ports: set[int] = set()
        self._lock = threading.Lock()
        self._waiters: dict[int, tuple[threading.Event, list[Any]]] = {}
        self._errors: dict[int, str] = {}

    # -- called from worker threads
    def send(self, msgs: list[Any]) -> list[int]:
        """Serialise the messages into one buffer and queue it on the connection (one write
        instead of one per message). Returns their xids."""
        buf = bytearray()
        xids = []
        with self._lock:
            if not self.alive:
                raise SwitchGone(f"switch {self.dpid:#x} is not connected")
            for m in msgs:
                m.datapath = self.dp
                xids.append(self.dp.set_xid(m))
                m.serialize()
                buf += m.buf
            if not self.dp.send(bytes(buf)):
                raise SwitchGone(f"switch {self.dpid:#x} connection is closing")
        return xids

    def send_ops(self, ops: list[Any]) -> list[int]:
        """Like `send` for `state.Op`s, packed by `tandem.sdn.wire` (the same bytes as the
        os-ken messages, much cheaper). Returns their xids."""
        chunks = []
        xids = []
        with self._lock:
            if not self.alive:
                raise SwitchGone(f"switch {self.dpid:#x} is not connected")
            dp = self.dp
            for op in ops:
                dp.xid = (dp.xid + 1) & ofp.MAX_XID
                xids.append(dp.xid)
                chunks.append(op.encode(dp.xid))
            if not dp.send(b"".join(chunks)):
                raise SwitchGone(f"switch {self.dpid:#x} connection is closing")
        return xids

    def _request(self, msg: Any, timeout: float) -> list[Any]:
        ev = threading.Event()
        bodies: list[Any] = []
        with self._lock:
            if not self.alive:
                raise SwitchGone(f"switch {self.dpid:#x} is not connected")
            msg.datapath = self.dp
            xid = self.dp.set_xid(msg)
            self._waiters[xid] = (ev, bodies)
            msg.serialize()
            ok = self.dp.send(msg.buf)
        if not ok or not ev.wait(timeout):
            with self._lock:
                self._waiters.pop(xid, None)
            raise SwitchGone(f"switch {self.dpid:#x}: no reply to {type(msg).__name__} "
                             f"within {timeout:.0f} s")
        if not self.alive:
            raise SwitchGone(f"switch {self.dpid:#x} disconnected")
        return bodies

    def barrier(self, timeout: float = 10.0) -> None:
        self._request(parser.OFPBarrierRequest(None), timeout)

    def take_errors(self, xids: list[int]) -> dict[int, str]:
        with self._lock:
            return {x: self._errors.pop(x) for x in xids if x in self._errors}

    def flow_stats(self, timeout: float = 10.0) -> list[Any]:
        req = parser.OFPFlowStatsRequest(None, 0, 0, ofp.OFPP_ANY, ofp.OFPG_ANY, 0, 0,
                                         parser.OFPMatch())
        return [s for body in self._request(req, timeout) for s in body]

    def meter_configs(self, timeout: float = 10.0) -> list[Any]:
        req = parser.OFPMeterConfigStatsRequest(None, 0, ofp.OFPM_ALL)
        return [s for body in self._request(req, timeout) for s in body]

    def port_stats(self, timeout: float = 10.0) -> list[Any]:
        req = parser.OFPPortStatsRequest(None, 0, ofp.OFPP_ANY)
        return [s for body in self._request(req, timeout) for s in body]

    def port_descs(self, timeout: float = 10.0) -> list[Any]:
        req = parser.OFPPortDescStatsRequest(None, 0)
        return [s for body in self._request(req, timeout) for s in body]

    def packet_out(self, port: int, data: bytes) -> None:
        msg = parser.OFPPacketOut(None, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
                                  actions=[parser.OFPActionOutput(port, 0)], data=data)
        self.send([msg])

    # -- called from the app's event thread
    def on_reply(self, msg: Any, last: bool = True) -> None:
        with self._lock:
            w = self._waiters.get(msg.xid)
            if w is None:
                return
            if hasattr(msg, "body"):
                w[1].append(msg.body)
            if last:
                del self._waiters[msg.xid]
        if last:
            w[0].set()

    def on_error(self, msg: Any) -> None:
        text = f"OFPT_ERROR type={msg.type} code={msg.code}"
        names = {ofp.OFPET_METER_MOD_FAILED: "METER_MOD_FAILED",
                 ofp.OFPET_FLOW_MOD_FAILED: "FLOW_MOD_FAILED",
                 ofp.OFPET_BAD_REQUEST: "BAD_REQUEST", ofp.OFPET_BAD_ACTION: "BAD_ACTION",
                 ofp.OFPET_BAD_INSTRUCTION: "BAD_INSTRUCTION", ofp.OFPET_BAD_MATCH: "BAD_MATCH"}
        if msg.type in names:
            text += f" ({names[msg.type]})"
        with self._lock:
            self._errors[msg.xid] = text
            w = self._waiters.pop(msg.xid, None)  # a failed request gets no other reply
        if w is not None:
            w[0].set()

    def close(self) -> None:
        with self._lock:
            self.alive = False
            waiters = list(self._waiters.values())
            self._waiters.clear()
        for ev, _ in waiters:
            ev.set()


class TandemSdnApp(app_manager.OSKenApp):  # type: ignore[misc]
    OFP_VERSIONS = [ofp.OFP_VERSION]
    # Set by the entry point before the AppManager starts the app (see tandem.sdn.process.serve).
    unit: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.channels: dict[int, SwitchChannel] = {}

    def _ch(self, ev: Any) -> SwitchChannel | None:
        ch = self.channels.get(ev.msg.datapath.id)
        return ch if ch is not None and ch.dp is ev.msg.datapath else None

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state_change(self, ev: Any) -> None:
        dp = ev.datapath
        if dp.id is None:
            return
        if ev.state == MAIN_DISPATCHER:
            old = self.channels.get(dp.id)
            if old is not None:
                old.close()
            ch = SwitchChannel(dp)
            self.channels[dp.id] = ch
            log.info("switch %#x connected from %s", dp.id, dp.address)
            if TandemSdnApp.unit is not None:
                TandemSdnApp.unit.switch_up(ch)
        elif ev.state == DEAD_DISPATCHER:
            ch = self.channels.get(dp.id)
            if ch is not None and ch.dp is dp:
                del self.channels[dp.id]
                ch.close()
                log.info("switch %#x disconnected", dp.id)
                if TandemSdnApp.unit is not None:
                    TandemSdnApp.unit.switch_down(ch)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def _barrier(self, ev: Any) -> None:
        ch = self._ch(ev)
        if ch:
            ch.on_reply(ev.msg)

    def _multipart(self, ev: Any) -> None:
        ch = self._ch(ev)
        if ch:
            ch.on_reply(ev.msg, last=not (ev.msg.flags & ofp.OFPMPF_REPLY_MORE))

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def _flow_stats(self, ev: Any) -> None:
        self._multipart(ev)

    @set_ev_cls(ofp_event.EventOFPMeterConfigStatsReply, MAIN_DISPATCHER)
    def _meter_config(self, ev: Any) -> None:
        self._multipart(ev)

    @set_ev_cls(ofp_event.EventOFPPortStatsReply, MAIN_DISPATCHER)
    def _port_stats(self, ev: Any) -> None:
        self._multipart(ev)

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    def _port_desc(self, ev: Any) -> None:
        self._multipart(ev)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    def _error(self, ev: Any) -> None:
        ch = self._ch(ev)
        log.warning("switch %#x error xid=%s type=%s code=%s", ev.msg.datapath.id, ev.msg.xid,
                    ev.msg.type, ev.msg.code)
        if ch:
            ch.on_error(ev.msg)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def _port_status(self, ev: Any) -> None:
        ch = self._ch(ev)
        if ch and TandemSdnApp.unit is not None:
            TandemSdnApp.unit.port_status(ch, ev.msg)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev: Any) -> None:
        ch = self._ch(ev)
        if ch and TandemSdnApp.unit is not None:
            TandemSdnApp.unit.packet_in(ch, ev.msg.match.get("in_port", 0), bytes(ev.msg.data))
