"""Telemetry consumer: folds samples into smoothed link/site metrics, publishes DEGRADED/UP.

Thin by design: decoding lives in `tandem.telemetry_formats`, smoothing and hysteresis in
`tandem.telemetry` (pure). What is here is the I/O needed to reach ≥ 20,000 samples/s on one
core: the worker's telemetry loop (`tandem.streams.txloop`, one transaction per partition
batch) takes records in batches of up to 5,000 (Faust's per-message stream path is ~15x more
expensive, see docs/TELEMETRY.md), the
smoothed state of every link and site is kept in memory, and the `link_metrics` /
`site_metrics` tables are written every 0.2 s, once per element touched (a bounded rate),
not once per sample. The inventory is re-read from the global `inventory` table once per
flush interval per link, so a changed SLA band (capacity, nominal latency) applies at once.

Outputs: `LinkStateEvent` DEGRADED/UP on the link-state topic (source "streams/telemetry",
cause prefixed "telemetry:") and an `Alarm` raised/cleared on the alarm topic, both with ids
derived from (link, state, sample time) so a re-run yields the same events. They, and the
dead letters, are committed with the offsets of the batch that caused them: once each.
"""

from __future__ import annotations

import logging
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

from tandem.events import derived_id, new_meta
from tandem.streams.compat import faust_table_writes as tables
from tandem.streams import topics as T
from tandem.streams.agents.base import global_table
from tandem.streams.deadletter import COUNTS, dead_letter
from tandem.streams.txloop import Out, Record
from tandem.telemetry import (DEGRADED, UP, Direction, Ewma, Finding, LinkTracker, Params, PortCounter,
                              SiteTracker, Transition, band_of)
from tandem.telemetry_formats import LinkReading, PortReading, Reading, SiteReading, parse
from tandem.v1 import alarms_pb2, inventory_pb2, link_state_pb2, telemetry_pb2
from tandem.validation import PROCESSING_ERROR, UNKNOWN_REFERENCE, InvalidEvent

log = logging.getLogger(__name__)

CONSUMER = "telemetry-in"
SOURCE = "streams/telemetry"
_STATE = {UP: link_state_pb2.OPER_STATE_UP, DEGRADED: link_state_pb2.OPER_STATE_DEGRADED}
_STATE_BACK = {v: k for k, v in _STATE.items()}
# A record as the fold sees it: (topic, partition, offset, key, value, timestamp in seconds).
Rec = tuple[str, int, int, "bytes | None", "bytes | None", float]


@dataclass
class Stats:
    """Counters read by the benchmark and tests (per worker)."""

    records: int = 0
    readings: int = 0
    dead_letters: int = 0
    transitions: int = 0
    batches: int = 0
    table_writes: int = 0
    ports_unmapped: int = 0
    # Produce (Kafka record timestamp) → table write, seconds; filled only when record_lags.
    record_lags: bool = False
    lags: array[float] = field(default_factory=lambda: array("d"))


class TelemetryFold:
    """The in-memory hot state of one worker and the per-batch fold."""

    def __init__(self, tandem: Any, params: Params) -> None:
        self.tandem = tandem
        self.params = params
        self.inventory = tandem.tables["inventory"]
        self.link_table = tandem.tables["link_metrics"]
        self.site_table = tandem.tables["site_metrics"]
        self.links: dict[str, tuple[bytes, LinkTracker]] = {}
        self.sites: dict[str, SiteTracker] = {}
        self.ports: dict[tuple[int, int], PortCounter] = {}
        self.stats = Stats()
        # Links and sites touched since the last flush (the inventory is re-read for a link
        # once per flush interval).
        self.fresh: dict[str, LinkTracker] = {}
        self.dirty_sites: set[str] = set()
        self.pending_ts: list[float] = []
        prefix = tandem.settings.topic_prefix
        self.dead = T.SPECS[T.DEAD_LETTERS_BASE].name(prefix)
        self.link_state_topic = T.SPECS[T.LINK_STATE_BASE].name(prefix)
        self.alarms_topic = T.SPECS[T.ALARMS_BASE].name(prefix)

    def forget(self) -> None:
        """Partitions moved (rebalance): drop hot state; links resume from the table."""
        self.flush()
        self.links.clear()
        self.sites.clear()
        self.ports.clear()

    # -- topology ---------------------------------------------------------------------
    def tracker(self, link_id: str, fresh: dict[str, LinkTracker]) -> LinkTracker:
        """The link's tracker, its band re-read from the inventory once per flush."""
        tr = fresh.get(link_id)
        if tr is not None:
            return tr
        raw = self.inventory.get(f"link/{link_id}")
        if raw is None:
            raise InvalidEvent(UNKNOWN_REFERENCE, f"link_id = {link_id!r}: no such link in the "
                                                  "inventory")
        cached = self.links.get(link_id)
        if cached is None:
            tr = LinkTracker(band_of(inventory_pb2.Link.FromString(raw), self.params), self.params)
            self._restore(tr)
            self.links[link_id] = (raw, tr)
        else:
            old_raw, tr = cached
            if raw is not old_raw and raw != old_raw:
                tr.rebase(band_of(inventory_pb2.Link.FromString(raw), self.params))
                self.links[link_id] = (raw, tr)
        fresh[link_id] = tr
        return tr

    def _restore(self, tr: LinkTracker) -> None:
        """A link first seen by this worker: resume from its table entry (after a rebalance
        or a restart the table is restored from its changelog)."""
        raw = self.link_table.get(tr.band.link_id)
        if not raw:
            return
        m = telemetry_pb2.LinkMetrics.FromString(raw)
        for d in m.directions:
            if d.from_site not in (tr.band.site_a, tr.band.site_b):
                continue
            t = d.last_sample_time
            tr.dirs[d.from_site] = Direction(
                util=Ewma(d.utilisation_mbps, t, d.has_utilisation),
                latency=Ewma(d.latency_ms, t, d.has_latency), loss=Ewma(d.loss, t, d.has_loss),
                samples=d.samples, last_t=t)
            tr.clock = max(tr.clock, t)
        tr.state = _STATE_BACK.get(m.state, UP)
        tr.last_transition = m.last_transition_time
        tr.pending_since, tr.pending_count = None, 0

    def port_map(self) -> tuple[set[int], dict[tuple[int, int], tuple[str, str]]]:
        """(known datapath ids, (dpid, port) → (link_id, from_site)) from the inventory."""
        dpids: dict[str, int] = {}
        links: list[inventory_pb2.Link] = []
        for key, raw in list(self.inventory.items()):
            if key.startswith("site/"):
                s = inventory_pb2.Site.FromString(raw)
                if s.datapath_id:
                    dpids[s.site_id] = s.datapath_id
            elif key.startswith("link/"):
                links.append(inventory_pb2.Link.FromString(raw))
        out: dict[tuple[int, int], tuple[str, str]] = {}
        for ln in links:
            for site, port in ((ln.site_a, ln.port_a), (ln.site_b, ln.port_b)):
                if port and site in dpids:
                    out[(dpids[site], port)] = (ln.link_id, site)
        return set(dpids.values()), out

    # -- the fold ---------------------------------------------------------------------
    async def process(self, records: list[Rec]) -> list[Out]:
        """Fold a batch of (topic, partition, offset, key, value, timestamp_s) records; return
        the transitions' link-state events and alarms and the dead letters, to be sent in the
        batch's transaction."""
        now = time.time()
        st = self.stats
        fresh = self.fresh
        transitions: list[Transition] = []
        bad: list[tuple[Rec, str, str]] = []
        ports: tuple[set[int], dict[tuple[int, int], tuple[str, str]]] | None = None
        for rec in records:
            try:
                readings = parse(rec[4], rec[5] or now, now)
                # Check every reading's references before folding any, so a record is
                # folded whole or dead-lettered whole.
                plan: list[tuple[Reading, Any]] = []
                for r in readings:
                    if type(r) is LinkReading:
                        tr = self.tracker(r.link_id, fresh)
                        if r.from_site != tr.band.site_a and r.from_site != tr.band.site_b:
                            raise InvalidEvent(UNKNOWN_REFERENCE, (
                                f"from_site = {r.from_site!r}: not an endpoint of link "
                                f"{r.link_id!r} ({tr.band.site_a}, {tr.band.site_b})"))
                        plan.append((r, tr))
                    elif type(r) is SiteReading:
                        if self.inventory.get(f"site/{r.site_id}") is None:
                            raise InvalidEvent(UNKNOWN_REFERENCE, f"site_id = {r.site_id!r}: no "
                                                                  "such site in the inventory")
                        plan.append((r, None))
                    else:
                        assert isinstance(r, PortReading)
                        if ports is None:
                            ports = self.port_map()
                        if r.datapath_id not in ports[0]:
                            raise InvalidEvent(UNKNOWN_REFERENCE, (
                                f"port.datapath_id = {r.datapath_id:#x}: no site in the "
                                "inventory has this datapath"))
                        plan.append((r, ports[1].get((r.datapath_id, r.port_no))))
                for r, extra in plan:
                    if type(r) is LinkReading:
                        t = extra.observe(r.from_site, r.t, r.utilisation_mbps, r.latency_ms,
                                          r.loss)
                        if t is not None:
                            transitions.append(t)
                    elif type(r) is SiteReading:
                        self._site(r)
                        self.dirty_sites.add(r.site_id)
                    else:
                        self._port(r, extra, fresh, transitions)  # type: ignore[arg-type]
                st.readings += len(readings)
            except InvalidEvent as exc:
                bad.append((rec, exc.reason, exc.detail))
            except Exception as exc:  # a bug must not lose the record: keep it, say why
                log.exception("%s failed on a record", CONSUMER)
                bad.append((rec, PROCESSING_ERROR, repr(exc)))
        st.records += len(records)
        st.batches += 1
        if st.record_lags:
            self.pending_ts.extend(rec[5] or now for rec in records)
        outs: list[Out] = []
        for tr_ in transitions:
            outs.extend(self._publish(tr_))
        st.transitions += len(transitions)
        for rec, reason, detail in bad:
            outs.append(dead_letter(self.dead, Record(*rec), reason, detail, CONSUMER))
        st.dead_letters += len(bad)
        return outs

    def flush(self) -> None:
        """Write every link and site touched since the last flush to the tables (one write
        per element however many samples it got), and drop the per-flush inventory cache."""
        self._flush(self.fresh, self.dirty_sites)
        self.fresh = {}
        self.dirty_sites = set()
        if self.stats.record_lags and self.pending_ts:
            written = time.time()
            self.stats.lags.extend(written - ts for ts in self.pending_ts)
            self.pending_ts.clear()

    def _site(self, r: SiteReading) -> None:
        tr = self.sites.get(r.site_id)
        if tr is None:
            tr = self.sites[r.site_id] = SiteTracker()
        tr.observe(r.t, r.free_vcpus, r.free_memory_gib, r.free_storage_gib, self.params.tau_s)

    def _port(self, r: PortReading, where: tuple[str, str] | None,
              fresh: dict[str, LinkTracker], transitions: list[Transition]) -> None:
        if where is None:  # a host-facing port (no declared link): counted, not a link metric
            self.stats.ports_unmapped += 1
            COUNTS[(CONSUMER, "port_not_on_a_link")] += 1
            return
        key = (r.datapath_id, r.port_no)
        pc = self.ports.get(key)
        if pc is None:
            pc = self.ports[key] = PortCounter()
        rate = pc.update(r.tx_bytes, r.tx_packets, r.tx_dropped, r.duration_s)
        if rate is None:
            return
        link_id, site = where
        tr = self.tracker(link_id, fresh)
        t = tr.observe(site, r.t, utilisation_mbps=rate[0], loss=rate[1])
        if t is not None:
            transitions.append(t)

    def _flush(self, links: dict[str, LinkTracker], sites: set[str]) -> None:
        for link_id, tr in links.items():
            tables.put(self.link_table, link_id, link_metrics(tr).SerializeToString())
        for site_id in sites:
            s = self.sites[site_id]
            tables.put(self.site_table, site_id, telemetry_pb2.SiteMetrics(
                site_id=site_id, free_vcpus=s.vcpus.value, free_memory_gib=s.memory_gib.value,
                free_storage_gib=s.storage_gib.value, samples=s.samples,
                last_sample_time=s.last_t).SerializeToString())
        self.stats.table_writes += len(links) + len(sites)

    def _publish(self, t: Transition) -> list[Out]:
        ev, alarm = transition_events(t)
        key = t.link_id.encode()
        log.info("telemetry: link %s %s (%s)", t.link_id, t.state, t.cause)
        return [Out(self.link_state_topic, ev.SerializeToString(), key=key),
                Out(self.alarms_topic, alarm.SerializeToString(), key=key)]


def link_metrics(tr: LinkTracker) -> telemetry_pb2.LinkMetrics:
    f: Finding | None = None
    m = telemetry_pb2.LinkMetrics(link_id=tr.band.link_id, state=_STATE[tr.state],
                                  last_transition_time=tr.last_transition)
    for site in sorted(tr.dirs):
        d = tr.dirs[site]
        m.directions.add(from_site=site, utilisation_mbps=d.util.value,
                         latency_ms=d.latency.value, loss=d.loss.value, samples=d.samples,
                         last_sample_time=d.last_t, has_utilisation=d.util.seen,
                         has_latency=d.latency.seen, has_loss=d.loss.seen)
    if tr.state == DEGRADED:  # the worst metric now (not only the one that tripped it)
        found = tr.outside(inner=False) or tr.outside(inner=True)
        f = found[0] if found else tr.finding
    if tr.state == DEGRADED and f is not None:
        m.degradation.CopyFrom(link_state_pb2.Degradation(metric=f.metric, observed=f.observed,
                                                          threshold=f.threshold))
    return m


def transition_events(t: Transition) -> tuple[link_state_pb2.LinkStateEvent, alarms_pb2.Alarm]:
    """The link-state event and the alarm for a transition; ids derived from the transition."""
    tag = f"{t.at!r}"
    ev = link_state_pb2.LinkStateEvent(
        meta=new_meta(SOURCE, event_id=derived_id("telemetry", t.link_id, t.state, tag), at=t.at),
        link_id=t.link_id, state=_STATE[t.state], cause=f"telemetry: {t.cause}", sla=True)
    if t.state == DEGRADED and t.finding is not None:
        ev.degradation.CopyFrom(link_state_pb2.Degradation(
            metric=t.finding.metric, observed=t.finding.observed, threshold=t.finding.threshold,
            effective_capacity_ab_mbps=t.effective_ab_mbps,
            effective_capacity_ba_mbps=t.effective_ba_mbps))
    alarm = alarms_pb2.Alarm(
        meta=new_meta(SOURCE, event_id=derived_id("telemetry-alarm", t.link_id, t.state, tag),
                      at=t.at),
        severity=alarms_pb2.SEVERITY_MAJOR, raised_by=SOURCE, link_id=t.link_id,
        text=(f"link {t.link_id} degraded: {t.cause}" if t.state == DEGRADED
              else f"link {t.link_id} recovered: {t.cause}"),
        cleared=t.state == UP)
    return ev, alarm


class TelemetryHandler:
    """The telemetry topic's handler in the worker's telemetry loop (`tandem.streams.txloop`):
    each batch's transitions and dead letters are committed with its offsets. The hot state
    is this worker's; on a rebalance or an aborted batch it is dropped (written to the tables
    first) and links resume from their table entries."""

    def __init__(self, fold: TelemetryFold, flush_interval_s: float) -> None:
        self.fold = fold
        self.flush_interval_s = flush_interval_s
        self.last_flush = time.monotonic()

    async def assigned(self, tp: Any, committed: int) -> None:
        self.fold.forget()

    def revoked(self, tp: Any) -> None:
        self.fold.forget()

    def aborted(self, tp: Any) -> None:
        self.fold.forget()

    async def prepare(self, tp: Any, first_offset: int) -> None:
        return None

    async def before_commit(self) -> None:
        return None  # the metric tables are a cache (see flush_tables), not covered by offsets

    async def handle(self, records: list[Record]) -> list[Out]:
        outs = await self.fold.process([(r.topic, r.partition, r.offset, r.key, r.value,
                                         r.timestamp) for r in records])
        self.maybe_flush()
        return outs

    def maybe_flush(self) -> None:
        now = time.monotonic()
        if now - self.last_flush >= self.flush_interval_s and (self.fold.fresh or
                                                               self.fold.dirty_sites):
            self.fold.flush()
            self.last_flush = now


def install(tandem: Any, params: Params | None = None, flush_interval_s: float = 0.2,
            ) -> TelemetryHandler:
    """Adds the metric tables to `tandem` and returns the telemetry topic's handler (the caller
    runs it in a loop of its own, batches of up to 5,000 records). Idempotent.

    The `link_metrics` / `site_metrics` tables are written at most every `flush_interval_s`
    (after a batch, or by the worker's flush timer when the topic goes quiet), once per
    element touched: a bounded rate, not once per sample. They are the smoothed state a link
    resumes from on another worker; a redelivered sample carries no EWMA weight
    (see tandem.telemetry.alpha)."""
    existing = getattr(tandem, "_telemetry_handler", None)
    if existing is not None:  # already installed (by create_app): only adopt new params
        if params is not None:
            existing.fold.params = params
        return existing  # type: ignore[no-any-return]
    app = tandem.app
    # Global (one partition, like the inventory): the decider on any worker reads current
    # metrics; each link is written by the one worker consuming its telemetry partition.
    for name in ("link_metrics", "site_metrics"):
        tandem.tables[name] = global_table(app, name)
    fold = TelemetryFold(tandem, params or Params())
    handler = TelemetryHandler(fold, flush_interval_s)
    tandem._telemetry_fold = fold
    tandem._telemetry_handler = handler

    @app.timer(interval=flush_interval_s, name="tandem.telemetry-flush")
    async def flush_quiet() -> None:
        handler.maybe_flush()

    return handler
