"""The SDN control unit of one site: its threads and logic (Kafka side: `tandem.sdn.process`).

Why this shape:
- One worker thread owns the intended state (`SiteIntent`) and the switches' tables: commands
  and reconciliations are jobs on one queue, so they never interleave.
- Intended state is rebuilt at start by folding the site's command topic from offset 0; the
  commands below the consumer group's committed offset were acknowledged before and are only
  folded. When the replay reaches the end the unit waits briefly for its switches, reconciles
  each one (repairing only the difference), and then acknowledges the commands that arrived
  while it was down.
- Every live command runs make-before-break (phases of `state.Plan`, a barrier after each) and
  is acknowledged on `tandem.sdn.acks` with its timings, or as FAILED with the switch's error.
- The core names links, not ports (`InstallPath.crossing`): the worker resolves them with
  the port book folded from the inventory (`tandem.sdn.facts`, `tandem.sdn.crossing`). At
  start the inventory may not have been read yet: a crossing waits until the Kafka side says
  the inventory is read up to the end it had at start (`inventory_ready`), at most
  `inventory_wait` seconds after the unit started, and is then resolved — or acknowledged
  FAILED naming the link (and saying the inventory was not read in time).
- Acknowledgements carry the workload and reservation and are keyed by workload id (the
  executor of a workload reads them from its partition); by site for hand tools' commands.
- Poller threads (`tandem.sdn.facts`) publish port counters (telemetry), LLDP (discovery) and
  reconcile periodically; port status changes become link-state events.
Kafka I/O stays on the asyncio thread; other threads hand messages over with
`loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp

from tandem.events import new_meta
from tandem.sdn.app import SwitchChannel, SwitchGone
from tandem.sdn.facts import SiteFacts
from tandem.sdn.intents import Tables, spec_from_flow_stats, spec_from_meter_config
from tandem.sdn.reconcile import diff
from tandem.sdn.state import (
    FLOW_ADD, FLOW_DEL, METER_ADD, METER_DEL, METER_MOD, NOOP, OK, REJECTED, Plan, SiteIntent,
)
from tandem.v1 import commands_pb2 as c

log = logging.getLogger("tandem.sdn.unit")

Publish = Callable[[str, str, Any], None]  # (topic kind, key, protobuf message)
MAX_BATCH = 512


def _rid(cmd: Any) -> str:
    op = cmd.WhichOneof("op")
    return str(getattr(cmd, op).reservation_id) if op else ""


@dataclass(slots=True)
class Job:
    kind: str  # "batch" (live commands) | "command" (replayed) | "replay_done" | "reconcile" | "stop"
    cmd: Any = None
    batch: list[Job] = field(default_factory=list)
    offset: int = -1
    replay: bool = False
    needs_ack: bool = True
    received: float = field(default_factory=time.perf_counter)
    dpid: int = 0


@dataclass(slots=True)
class ExecResult:
    error: str = ""
    sent_ms: float = 0.0
    confirmed_ms: float = 0.0


@dataclass(slots=True)
class UnitConfig:
    site: str
    stats_interval: float = 5.0
    lldp_interval: float = 2.0
    reconcile_interval: float = 30.0
    connect_wait: float = 5.0
    barrier_timeout: float = 10.0
    # Longest wait, from the unit's start, for the inventory before a crossing is refused.
    inventory_wait: float = 10.0


class ControlUnit(SiteFacts):
    def __init__(self, cfg: UnitConfig, publish: Publish, on_acked: Callable[[int], None]) -> None:
        self.cfg = cfg
        self.site = cfg.site
        self.publish = publish
        self.publish_many: Callable[[list[tuple[str, str, Any]]], None] = self._publish_each
        self.on_acked = on_acked  # commit the command's offset once its ack is out
        self.intent = SiteIntent()
        self.channels: dict[int, SwitchChannel] = {}
        self.jobs: queue.Queue[Job] = queue.Queue()
        self.caught_up = threading.Event()
        self.stopping = threading.Event()
        self._pending: list[tuple[Job, Plan]] = []
        self._init_facts()
        # Set by the Kafka side once the inventory topic is read up to its end at start.
        self.inventory_ready = threading.Event()
        self.waiting_for_inventory = threading.Event()  # (observable by tests)
        self._inventory_deadline = time.monotonic() + cfg.inventory_wait
        self.stats = {"commands": 0, "reconciles": 0, "repairs": 0}
        self._threads: list[threading.Thread] = []

    def _publish_each(self, items: list[tuple[str, str, Any]]) -> None:
        for kind, key, msg in items:
            self.publish(kind, key, msg)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        for target in (self._worker, self._poll_stats, self._poll_lldp, self._poll_reconcile):
            t = threading.Thread(target=target, name=f"sdn-{target.__name__}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self.stopping.set()
        self.jobs.put(Job("stop"))

    # ------------------------------------------------------------------ from os-ken
    def switch_up(self, ch: SwitchChannel) -> None:
        self.channels[ch.dpid] = ch
        self.jobs.put(Job("reconcile", dpid=ch.dpid))

    def switch_down(self, ch: SwitchChannel) -> None:
        if self.channels.get(ch.dpid) is ch:
            del self.channels[ch.dpid]

    # ------------------------------------------------------------------ worker
    def _worker(self) -> None:
        while not self.stopping.is_set():
            job = self.jobs.get()
            try:
                if job.kind == "stop":
                    return
                if job.kind == "batch":
                    # Live commands: this batch and any queued behind it run together (one
                    # barrier per phase per switch for all of them). A reservation seen twice
                    # starts a new group, so each reservation's phases keep their order.
                    live = list(job.batch)
                    carry: Job | None = None
                    while len(live) < MAX_BATCH:
                        try:
                            nxt = self.jobs.get_nowait()
                        except queue.Empty:
                            break
                        if nxt.kind != "batch":
                            carry = nxt
                            break
                        live.extend(nxt.batch)
                    group: list[Job] = []
                    rids: set[str] = set()
                    for j in live:
                        if _rid(j.cmd) in rids:
                            self._commands(group)
                            group, rids = [], set()
                        group.append(j)
                        rids.add(_rid(j.cmd))
                    if group:
                        self._commands(group)
                    if carry is not None:
                        self.jobs.put(carry)  # (stop, replay_done, reconcile: order-insensitive)
                elif job.kind == "command":
                    self._command(job)
                elif job.kind == "replay_done":
                    self._replay_done()
                elif job.kind == "reconcile" and self.caught_up.is_set():
                    self.reconcile(job.dpid)
            except Exception:  # one bad job must not stop the unit
                log.exception("job %s failed", job.kind)

    def _apply(self, cmd: Any) -> Plan:
        """Fold one command, resolving its crossing with the port book. Before the inventory
        has been read to its end (start-up), a crossing waits for it — at most until
        `inventory_wait` after the unit's start — so it is resolved against the ports the
        inventory declares, not against a stale or missing view."""
        op = cmd.WhichOneof("op")
        if op != "install" or not cmd.install.HasField("crossing") \
                or self.inventory_ready.is_set():
            return self.intent.apply_command(cmd, self.resolve)
        left = self._inventory_deadline - time.monotonic()
        if left > 0:
            log.info("command %s: waiting up to %.1f s for the inventory to resolve its "
                     "crossing", cmd.command_id, left)
            self.waiting_for_inventory.set()
            self.inventory_ready.wait(left)
            self.waiting_for_inventory.clear()
        plan = self.intent.apply_command(cmd, self.resolve)
        if plan.status == REJECTED and not self.inventory_ready.is_set():
            plan.reason += (f" (the inventory was not read within {self.cfg.inventory_wait:g} s "
                            "of the unit's start)")
        return plan

    def _command(self, job: Job) -> None:
        """A replayed command: folded only (acknowledged after the first reconciliation if it
        was never acknowledged)."""
        plan = self._apply(job.cmd)
        self.stats["commands"] += 1
        if job.needs_ack:
            self._pending.append((job, plan))

    def _commands(self, jobs: list[Job]) -> None:
        t_start = time.perf_counter()
        plans = [self._apply(j.cmd) for j in jobs]
        self.stats["commands"] += len(jobs)
        live = [i for i, p in enumerate(plans) if p.status == OK]
        results = [ExecResult() for _ in jobs]
        t_fold = time.perf_counter()
        if live:
            t0 = min(jobs[i].received for i in live)
            for i, r in zip(live, self.execute_many([plans[i] for i in live], t0)):
                results[i] = r
        t_exec = time.perf_counter()
        self._ack_all(list(zip(jobs, plans, results)))
        log.info("%d commands: waited %.1f ms, folded %.1f ms, installed+confirmed %.1f ms, "
                 "acked %.1f ms", len(jobs), (t_start - min(j.received for j in jobs)) * 1000,
                 (t_fold - t_start) * 1000, (t_exec - t_fold) * 1000,
                 (time.perf_counter() - t_exec) * 1000)

    def _ack(self, job: Job, plan: Plan, res: ExecResult) -> None:
        self._ack_all([(job, plan, res)])

    def _ack_all(self, items: list[tuple[Job, Plan, ExecResult]]) -> None:
        """Acknowledge commands with one hand-over to the Kafka thread (one wake-up of its
        loop, not one per ack), then let it commit the highest offset."""
        out = []
        for job, plan, res in items:
            if plan.status == REJECTED:
                status, error = c.ACK_STATUS_FAILED, plan.reason
            elif res.error:
                status, error = c.ACK_STATUS_FAILED, res.error
            elif plan.status == NOOP:
                status, error = c.ACK_STATUS_NOOP, plan.reason
            else:
                status, error = c.ACK_STATUS_OK, ""
            workload = self.intent.workload_of(job.cmd)
            ack = c.SdnAck(
                meta=new_meta(f"sdn/{self.site}", correlation_id=job.cmd.meta.correlation_id),
                command_id=job.cmd.command_id, site_id=self.site, status=status, error=error,
                flows_added=plan.count(FLOW_ADD), flows_removed=plan.count(FLOW_DEL),
                meters_changed=plan.count(METER_ADD, METER_MOD, METER_DEL),
                sent_ms=res.sent_ms, confirmed_ms=res.confirmed_ms,
                workload_id=workload, reservation_id=_rid(job.cmd),
            )
            if status == c.ACK_STATUS_FAILED:
                log.warning("command %s failed: %s", job.cmd.command_id, error)
            # keyed by workload: co-partitioned with the decisions (its executor reads it)
            out.append(("ack", workload or self.site, ack))
        self.publish_many(out)
        offsets = [job.offset for job, _, _ in items if job.offset >= 0]
        if offsets:
            self.on_acked(max(offsets))

    def execute(self, plan: Plan, t0: float | None = None) -> ExecResult:
        return self.execute_many([plan], t0)[0]

    def execute_many(self, plans: list[Plan], t0: float | None = None) -> list[ExecResult]:
        """Run plans together: phase k of every plan, then one barrier per switch, then phase
        k+1. A plan whose op a switch refuses (or whose switch is not connected) stops there
        — its later phases (the switch-over, the removals) are not sent — and the others go
        on. Timings are from `t0` (command receipt) to last send / last barrier reply."""
        t0 = time.perf_counter() if t0 is None else t0
        results = [ExecResult() for _ in plans]
        failed: set[int] = set()
        for k in range(max((len(p.phases) for p in plans), default=0)):
            by_dp: dict[int, list[tuple[int, Any]]] = {}
            for i, p in enumerate(plans):
                if i in failed or k >= len(p.phases):
                    continue
                for op in p.phases[k]:
                    by_dp.setdefault(op.dpid, []).append((i, op))
            sent: dict[int, tuple[SwitchChannel, list[int], list[tuple[int, Any]]]] = {}
            for dp, items in by_dp.items():
                ch = self.channels.get(dp)
                try:
                    if ch is None:
                        raise SwitchGone(f"switch {dp:#x} not connected (installed by "
                                         "reconciliation when it connects)")
                    sent[dp] = (ch, ch.send_ops([op for _, op in items]), items)
                except SwitchGone as exc:
                    for i, _ in items:
                        if i not in failed:
                            failed.add(i)
                            results[i].error = str(exc)
            t_sent = (time.perf_counter() - t0) * 1000
            for dp, (ch, xids, items) in sent.items():
                try:
                    ch.barrier(self.cfg.barrier_timeout)
                    errs = ch.take_errors(xids)
                except SwitchGone as exc:
                    errs = {x: str(exc) for x in xids}
                for x, (i, op) in zip(xids, items):
                    if x in errs and i not in failed:
                        failed.add(i)
                        what = getattr(op.spec, "meter_id", 0) if op.kind.startswith("meter") \
                            else dict(op.spec.match)
                        results[i].error = (f"switch {dp:#x} refused {op.kind} {what}: "
                                            f"{errs[x]}")
            t_conf = (time.perf_counter() - t0) * 1000
            for dp, (_, _, items) in sent.items():
                for i, _ in items:
                    results[i].sent_ms = t_sent
                    results[i].confirmed_ms = t_conf
        return results

    # ------------------------------------------------------------------ reconciliation
    def read_tables(self, ch: SwitchChannel) -> Tables:
        t = Tables()
        for s in ch.flow_stats():
            t.add_flow(spec_from_flow_stats(ch.dpid, s))
        for m in ch.meter_configs():
            t.add_meter(spec_from_meter_config(ch.dpid, m))
        return t

    def reconcile(self, dpid: int) -> ExecResult:
        ch = self.channels.get(dpid)
        if ch is None:
            return ExecResult(error=f"switch {dpid:#x} not connected")
        try:
            if not ch.ports:
                ch.ports = {p.port_no for p in ch.port_descs() if p.port_no <= ofp.OFPP_MAX
                            and not (p.state & ofp.OFPPS_LINK_DOWN)}
            actual = self.read_tables(ch)
        except SwitchGone as exc:
            return ExecResult(error=str(exc))
        d = diff(self.intent.desired({dpid}), actual)
        self.stats["reconciles"] += 1
        if d.foreign_flows:
            log.warning("switch %#x carries %d entries that are not Tandem's (left alone)",
                        dpid, d.foreign_flows)
        if not d.plan.phases:
            return ExecResult()
        n = len(d.plan.ops)
        self.stats["repairs"] += n
        res = self.execute(d.plan)
        log.info("reconciled switch %#x: %d repairs (%s)%s", dpid, n,
                 ", ".join(f"{k}={d.plan.count(k)}" for k in
                           (METER_ADD, METER_MOD, FLOW_ADD, FLOW_DEL, METER_DEL) if d.plan.count(k)),
                 f" FAILED: {res.error}" if res.error else "")
        return res

    def _replay_done(self) -> None:
        want = set(self.intent.dpids)
        deadline = time.monotonic() + self.cfg.connect_wait
        while want - set(self.channels) and time.monotonic() < deadline:
            time.sleep(0.05)
        results = {dp: self.reconcile(dp) for dp in sorted(self.channels)}
        self.caught_up.set()
        log.info("replayed %d commands; reconciled %d switches", self.stats["commands"],
                 len(results))
        for job, plan in self._pending:
            res = ExecResult()
            if plan.status == OK:
                errs = [results[dp].error if dp in results else f"switch {dp:#x} not connected"
                        for dp in plan.dpids]
                res.error = "; ".join(e for e in errs if e)
            self._ack(job, plan, res)
        self._pending.clear()

    # ------------------------------------------------------------------ pollers
    def _poll_reconcile(self) -> None:
        while not self.stopping.wait(self.cfg.reconcile_interval):
            if self.caught_up.is_set():
                for dp in list(self.channels):
                    self.jobs.put(Job("reconcile", dpid=dp))
