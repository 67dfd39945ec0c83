"""Telemetry consumer: folds samples into smoothed link/site metrics, publishes DEGRADED/UP.

Thin by design: decoding lives in `tandem.telemetry_formats`, smoothing and hysteresis in
`tandem.telemetry` (pure). What is here is the I/O needed to reach ≥ 20,000 samples/s on one
core: an aiokafka consumer owned by the Faust app takes records in batches of up to 5,000
(Faust's per-message stream path is ~15x more expensive, see docs/TELEMETRY.md), the
smoothed state of every link and site is kept in memory, and the `link_metrics` /
`site_metrics` tables are written every 0.2 s, once per element touched (a bounded rate),
not once per sample. The inventory is re-read from the global `inventory` table once per
flush interval per link, so a changed SLA band (capacity, nominal latency) applies at once.

Outputs: `LinkStateEvent` DEGRADED/UP on the link-state topic (source "streams/telemetry",
cause prefixed "telemetry:") and an `Alarm` raised/cleared on the alarm topic, both with ids
derived from (link, state, sample time) so a re-run yields the same events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

from mode import Service

from tandem.events import derived_id, new_meta
from tandem.streams import topics as T
from tandem.streams.agents.base import global_table
from tandem.streams.deadletter import COUNTS, build_dead_letter
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
    # Longest producer flush + offset commit (the consumer loop waits for it).
    commit_s_max: float = 0.0
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
        # The batch consumer (mode "batch") and the next offset to fold per partition.
        self.consumer: Any = None
        self.positions: dict[Any, int] = {}

    async def lag(self) -> dict[str, int]:
        """Records not yet folded, per "topic[partition]" assigned to this worker's telemetry
        consumer (it is not Faust's consumer, so Faust's own lag figures do not cover it).
        Asks the broker for the end offsets (one round trip)."""
        consumer = self.consumer
        if consumer is None:
            return {}
        mine = sorted(consumer.assignment(), key=lambda t: t.partition)
        if not mine:
            return {}
        ends = await consumer.end_offsets(mine)
        out: dict[str, int] = {}
        for tp in mine:
            pos = self.positions.get(tp)
            if pos is None:  # nothing folded here yet: from the group's committed offset
                pos = await consumer.committed(tp) or 0
            out[f"{tp.topic}[{tp.partition}]"] = max(0, ends[tp] - pos)
        return out

    def forget(self) -> None:
        """Partitions moved (rebalance): drop hot state; links resume from the table."""
        self.flush()
        self.links.clear()
        self.sites.clear()
        self.ports.clear()
        self.positions.clear()

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
    async def process(self, records: list[Rec]) -> None:
        """Fold a batch of (topic, partition, offset, key, value, timestamp_s) records."""
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
        for tr_ in transitions:
            await self._publish(tr_)
        st.transitions += len(transitions)
        for rec, reason, detail in bad:
            await self._dead_letter(rec, reason, detail)
        st.dead_letters += len(bad)

    async def _dead_letter(self, rec: Rec, reason: str, detail: str) -> None:
        topic, partition, offset, key, value, _ = rec
        dl = build_dead_letter(topic=topic, partition=partition, offset=offset, key=key,
                               payload=value, reason=reason, detail=detail, consumer=CONSUMER)
        COUNTS[(CONSUMER, reason)] += 1
        log.warning("dead letter from %s[%d]@%d (%s): %s: %s", topic, partition, offset,
                    CONSUMER, reason, detail)
        await self.tandem.topic(T.DEAD_LETTERS_BASE).send(key=topic.encode(),
                                                          value=dl.SerializeToString())

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
            self.link_table[link_id] = link_metrics(tr).SerializeToString()
        for site_id in sites:
            s = self.sites[site_id]
            self.site_table[site_id] = telemetry_pb2.SiteMetrics(
                site_id=site_id, free_vcpus=s.vcpus.value, free_memory_gib=s.memory_gib.value,
                free_storage_gib=s.storage_gib.value, samples=s.samples,
                last_sample_time=s.last_t).SerializeToString()
        self.stats.table_writes += len(links) + len(sites)

    async def _publish(self, t: Transition) -> None:
        ev, alarm = transition_events(t)
        key = t.link_id.encode()
        await self.tandem.topic(T.LINK_STATE_BASE).send(key=key, value=ev.SerializeToString())
        await self.tandem.topic(T.ALARMS_BASE).send(key=key, value=alarm.SerializeToString())
        log.info("telemetry: link %s %s (%s)", t.link_id, t.state, t.cause)


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


def install(tandem: Any, params: Params | None = None, mode: str = "batch",
            max_records: int = 5000, flush_interval_s: float = 0.2,
            commit_interval_s: float = 1.0) -> TelemetryFold:
    """Adds the telemetry consumer and its tables to `tandem` (idempotent); returns its fold.

    mode "batch" (default): an aiokafka consumer owned by the Faust app (a Faust service,
    started after table recovery, stopped with the app) in consumer group
    "<app_id>.telemetry", fetching up to `max_records` per poll; tables are written at most
    every `flush_interval_s`, and every `commit_interval_s` the producer is flushed and then
    the offsets committed (at-least-once; a redelivered sample carries no EWMA weight, see
    tandem.telemetry.alpha).
    mode "stream": a Faust agent with `stream.take_events` (kept for comparison: Faust's
    per-message path costs ~10x more CPU than the batch consumer, see docs/TELEMETRY.md).
    """
    existing = getattr(tandem, "_telemetry_fold", None)
    if existing is not None:  # already installed (by create_app): only adopt new params
        if params is not None:
            existing.params = params
        return existing  # type: ignore[no-any-return]
    app = tandem.app
    # Global (one partition, like the inventory): the decider on any worker reads current
    # metrics; each link is written by the one worker consuming its telemetry partition.
    # use_partitioner: writes happen outside a Faust stream (no current event).
    # recovery_buffer_size=1: without it, with two workers writing, a worker's global table
    # stopped following the other worker's writes (tests/integration/streams/
    # test_telemetry_scaleout.py fails without it; Faust documents the same workaround).
    for name in ("link_metrics", "site_metrics"):
        tandem.tables[name] = global_table(app, name, use_partitioner=True)
    fold = TelemetryFold(tandem, params or Params())
    tandem._telemetry_fold = fold
    topic = tandem.topic(T.TELEMETRY_BASE)
    if mode == "stream":
        @app.agent(topic, name="tandem.telemetry-in")
        async def telemetry_in(stream: Any) -> None:
            # Below Faust's stream buffer (4096): a larger take stalled on a 30k backlog.
            async for events in stream.take_events(min(max_records, 1000), flush_interval_s):
                await fold.process([_from_event(ev) for ev in events])
                fold.flush()
        return fold
    if mode != "batch":
        raise ValueError(f"unknown telemetry mode {mode!r}")
    settings = tandem.settings
    topic_name = T.SPECS[T.TELEMETRY_BASE].name(settings.topic_prefix)

    class TelemetryConsumer(Service):  # type: ignore[misc]
        """Batch consumer of the telemetry topic inside the Faust worker."""

        async def on_start(self) -> None:
            from aiokafka import AIOKafkaConsumer
            from aiokafka.abc import ConsumerRebalanceListener

            svc = self

            class Moved(ConsumerRebalanceListener):  # type: ignore[misc]
                async def on_partitions_revoked(self, revoked: Any) -> None:
                    # Hand over cleanly: what was folded from the partitions leaving is
                    # flushed, delivered and committed before the group rebalances, so the
                    # next owner starts where this worker stopped instead of re-folding.
                    fold.forget()
                    leaving = set(revoked)
                    offsets = {tp: o for tp, o in svc.folded.items() if tp in leaving}
                    for tp in leaving:
                        svc.folded.pop(tp, None)
                    if offsets:
                        try:
                            # A background commit of older offsets must land first, or it
                            # would move the group's position back after this one.
                            if svc.committing is not None and not svc.committing.done():
                                await asyncio.wait_for(asyncio.shield(svc.committing), 10)
                            await app.producer.flush()
                            await svc.consumer.commit(offsets)
                        except Exception as exc:  # the next owner re-folds: redelivery, no loss
                            log.warning("%s: commit on revoke failed: %r", CONSUMER, exc)

                async def on_partitions_assigned(self, assigned: Any) -> None:
                    fold.forget()

            self.folded: dict[Any, int] = {}
            self.committing: asyncio.Future[None] | None = None
            self.consumer = AIOKafkaConsumer(
                bootstrap_servers=settings.broker, group_id=f"{settings.app_id}.telemetry",
                enable_auto_commit=False, auto_offset_reset="earliest",
                max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_bytes=16 * 1024 * 1024)
            await self.consumer.start()
            fold.consumer = self.consumer
            self.consumer.subscribe([topic_name], listener=Moved())

        async def on_stop(self) -> None:
            # A clean stop commits what was folded, so a successor starts where this
            # worker stopped (a crash instead redelivers since the last commit: harmless).
            try:
                if self.committing is not None and not self.committing.done():
                    await asyncio.wait_for(asyncio.shield(self.committing), 10)
                fold.flush()
                await app.producer.flush()
                mine = self.consumer.assignment()
                offsets = {tp: o for tp, o in self.folded.items() if tp in mine}
                if offsets:  # only what was folded: never a fetched-but-unfolded record
                    await self.consumer.commit(offsets)
            except Exception as exc:  # stopping anyway; the successor re-folds
                log.warning("%s: final commit failed: %r", CONSUMER, exc)
            await self.consumer.stop()

        @Service.task
        async def _run(self) -> None:
            from aiokafka.errors import CommitFailedError

            consumer = self.consumer
            last_flush = last_commit = time.monotonic()
            dirty = uncommitted = False
            folded = self.folded  # partition -> next offset, folded since the last commit

            async def commit(offsets: dict[Any, int]) -> None:
                # Offsets only after everything they cover is on the broker: table changelog,
                # transitions, dead letters (at-least-once; see tandem.telemetry.alpha). In
                # the background, so that fetching and folding go on meanwhile.
                t = time.monotonic()
                await app.producer.flush()
                if offsets:
                    try:
                        await consumer.commit(offsets)
                    except CommitFailedError as exc:  # a rebalance: the new owner re-folds
                        log.warning("%s: commit skipped: %r", CONSUMER, exc)
                fold.stats.commit_s_max = max(fold.stats.commit_s_max, time.monotonic() - t)
            while not self.should_stop:
                batch = await consumer.getmany(timeout_ms=int(flush_interval_s * 500),
                                               max_records=max_records)
                for tp, recs in batch.items():
                    await fold.process([(r.topic, r.partition, r.offset, r.key, r.value,
                                         r.timestamp / 1000.0) for r in recs])
                    folded[tp] = fold.positions[tp] = recs[-1].offset + 1
                    dirty = True
                now = time.monotonic()
                if dirty and now - last_flush >= flush_interval_s:
                    fold.flush()  # the tables (in memory now; changelog sent in background)
                    last_flush, dirty, uncommitted = now, False, True
                if (uncommitted and now - last_commit >= commit_interval_s
                        and (self.committing is None or self.committing.done())):
                    if self.committing is not None:
                        self.committing.result()  # a failed commit stops the loop, loudly
                    if dirty:
                        fold.flush()
                        last_flush, dirty = now, False
                    # Everything folded so far is flushed: its positions may be committed
                    # once the producer has delivered what the fold sent.
                    mine = consumer.assignment()
                    offsets = {tp: o for tp, o in folded.items() if tp in mine}
                    folded.clear()
                    self.committing = asyncio.ensure_future(commit(offsets))
                    last_commit, uncommitted = now, False

    app.service(TelemetryConsumer)
    return fold


def _from_event(ev: Any) -> Rec:
    m = ev.message
    return (m.topic, m.partition, m.offset, m.key, m.value, m.timestamp or 0.0)
