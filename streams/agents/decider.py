"""The decider's memory on the worker that holds it: the pure `tandem.decider.Decider`, how it
is rebuilt when a worker takes the decider over, its snapshots, and its outputs as records.

Driven by `tandem.streams.decider_service` (one Kafka transaction per batch of inputs). A worker
taking over finds every input below the decider log's end decided *and* published (the log
records and the outputs were committed together) and rebuilds the decider up to that end,
publishing nothing. It does not fold the whole log, which grows forever: every
`SNAPSHOT_EVERY` inputs (or `SNAPSHOT_MAX_AGE_S` seconds) the batch's transaction also writes a
snapshot (`tandem.snapshot`: the engine state under key "head" on `tandem.decider-snapshots`,
the dedupe entries added since the last snapshot under "ids/<from>-<to>" on
`tandem.decider-snapshot-ids`), and a worker taking over restores the newest head, checks it,
and folds only the log after it. Any snapshot it cannot use (another format, a broken chain, a
fingerprint that does not match) is said in the log and the log is folded from offset 0
instead: slower, never wrong.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from tandem import snapshot
from tandem.decider import Decider, Outputs
from tandem.events import new_meta
from tandem.streams.compat import faust_table_writes as tables
from tandem.streams import topics as T
from tandem.streams.agents.base import global_table
from tandem.streams.readback import read_tail, read_topic
from tandem.streams.txloop import Out
from tandem.v1 import decider_pb2, decision_pb2

log = logging.getLogger(__name__)
# Inputs folded since the last snapshot: bounds a takeover's tail (~1.3 ms of fold each on
# GÉANT; 500 keeps a takeover under 2 s) against the cost of a snapshot (~30 ms with 300
# workloads admitted, so ~3 % of a core at 400 inputs/s).
SNAPSHOT_EVERY = 500
SNAPSHOT_MAX_AGE_S = 10.0  # ... or this long, if anything was folded


class DeciderMemory:
    """The decider's memory on this worker: the pure decider and the log offset it covers."""

    def __init__(self, tandem: Any, workloads: Any) -> None:
        self.tandem = tandem
        self.workloads = workloads
        self.decider: Decider | None = None
        self.next_offset: int | None = None
        self.recoveries = 0
        self.last_recovery: dict[str, object] = {}
        # The log offset the newest snapshot covers (its deltas chain from 0 up to it).
        self.snapshot_offset = 0
        self.snapshot_at = time.monotonic()
        self.snapshots_written = 0
        self.tables = tandem.tables
        # Timestamp of the last log record folded (clock ticks resume from it after a takeover).
        self.last_time = 0.0
        prefix = tandem.settings.topic_prefix
        self.prefix = prefix
        self.broker = tandem.settings.broker
        self.log_topic = T.SPECS[T.DECIDER_BASE].name(prefix)
        self.decisions = T.SPECS[T.DECISIONS_BASE].name(prefix)
        self.alarms = T.SPECS[T.ALARMS_BASE].name(prefix)
        self.approvals = T.SPECS[T.APPROVALS_BASE].name(prefix)
        self.statuses = T.SPECS[T.WORKLOAD_STATUS_BASE].name(prefix)
        self.dead = T.SPECS[T.DEAD_LETTERS_BASE].name(prefix)
        self.snapshots = T.SPECS[T.DECIDER_SNAPSHOTS_BASE].name(prefix)
        self.snapshot_ids = T.SPECS[T.DECIDER_SNAPSHOT_IDS_BASE].name(prefix)

    def reset(self) -> None:
        """Forget the state (a batch was not committed, or the decider moved): rebuilt by the
        next `recover`."""
        self.decider, self.next_offset = None, None

    async def recover(self, upto: int) -> None:
        """The decider as it was after folding the log below `upto` (every input there is
        decided and published already): the newest usable snapshot, then the log after it."""
        started = time.monotonic()
        decider, base, why = await self._from_snapshot(upto)
        # Only the log after the snapshot is read: a takeover costs the tail, not the history.
        records = await read_topic(self.broker, self.log_topic, upto, start=base) \
            if upto > base else []
        bad = 0
        for n, r in enumerate(records):
            if r.offset >= base:
                bad += decider.fold_record(r.value, r.timestamp / 1000.0).invalid is not None
            self.last_time = r.timestamp / 1000.0
            if n % 50 == 49:
                await asyncio.sleep(0)  # heartbeats and other partitions' batches go on
        self.decider, self.next_offset = decider, upto
        self.snapshot_offset, self.snapshot_at = base, time.monotonic()
        self.recoveries += 1
        took = time.monotonic() - started
        self.last_recovery = {"snapshot_offset": base, "folded": upto - base, "seconds": took,
                              "snapshot": why}
        log.info("decider: state rebuilt up to offset %d: %s, then %d inputs folded (%d refused; "
                 "%d log records read) in %.2f s", upto, why, max(0, upto - base), bad,
                 len(records), took)

    async def _from_snapshot(self, upto: int) -> tuple[Decider, int, str]:
        """(decider, the log offset it covers, what was used) — a fresh decider at 0 when no
        usable snapshot covers at most `upto`."""
        if upto <= 0:
            return Decider(), 0, "empty log"
        try:
            # The newest head is among the last records (heads are many before compaction).
            heads = await read_tail(self.broker, self.snapshots, 10)
            head = _newest_head(heads, upto)
            if head is None and heads:
                head = _newest_head(await read_topic(self.broker, self.snapshots), upto)
            if head is None:
                return Decider(), 0, "no snapshot yet"
            deltas: dict[int, decider_pb2.DeciderSnapshot] = {}  # log_offset -> delta
            for r in await read_topic(self.broker, self.snapshot_ids):
                snap = decider_pb2.DeciderSnapshot.FromString(r.value or b"")
                deltas[snap.log_offset] = snap
        except Exception as exc:  # no snapshot topics (an older deployment), or unreadable
            log.warning("decider: snapshots unreadable (%r): folding from 0", exc)
            return Decider(), 0, f"snapshots unreadable ({exc!r})"
        chain: list[bytes] = []
        pos = head.log_offset
        while pos > 0:
            delta = deltas.get(pos)
            if delta is None or delta.delta_from >= pos:
                log.warning("decider: snapshot chain broken at offset %d: folding from 0", pos)
                return Decider(), 0, f"snapshot chain broken at {pos}"
            chain.append(delta.blob)
            pos = delta.delta_from
        try:
            decider = snapshot.restore(head.blob, list(reversed(chain)))
        except snapshot.SnapshotError as exc:
            log.warning("decider: snapshot at offset %d unusable (%s): folding from 0",
                        head.log_offset, exc)
            return Decider(), 0, f"snapshot unusable: {exc}"
        if snapshot.fingerprint(decider) != head.fingerprint:
            log.warning("decider: snapshot at offset %d does not match its fingerprint: folding "
                        "from 0", head.log_offset)
            return Decider(), 0, "snapshot fingerprint mismatch"
        return decider, head.log_offset, f"snapshot at offset {head.log_offset} restored"

    def snapshot_due(self) -> bool:
        d = self.decider
        pending = 0 if d is None else len(d.new_inputs)
        return pending >= SNAPSHOT_EVERY or bool(
            pending and time.monotonic() - self.snapshot_at >= SNAPSHOT_MAX_AGE_S)

    def snapshot_outputs(self, upto: int) -> list[Out]:
        """A snapshot covering the log below `upto` (written in the batch's transaction, so it
        exists exactly when the log records it covers are committed)."""
        d = self.decider
        assert d is not None
        meta = new_meta("streams/decider")
        delta = decider_pb2.DeciderSnapshot(meta=meta, log_offset=upto,
                                            delta_from=self.snapshot_offset,
                                            format=snapshot.FORMAT, blob=snapshot.take_delta(d))
        head = decider_pb2.DeciderSnapshot(meta=meta, log_offset=upto, format=snapshot.FORMAT,
                                           blob=snapshot.encode_state(d),
                                           fingerprint=snapshot.fingerprint(d))
        self.snapshot_offset, self.snapshot_at = upto, time.monotonic()
        self.snapshots_written += 1
        key = f"ids/{delta.delta_from:020d}-{upto:020d}".encode()
        return [Out(self.snapshot_ids, delta.SerializeToString(), key=key, partition=0),
                Out(self.snapshots, head.SerializeToString(), key=b"head", partition=0)]

    async def outputs(self, out: Outputs) -> list[Out]:
        """An input's outputs in publication order; the workloads table follows decisions.
        Decisions carry their steps: the executor (tandem.streams.agents.executor) sends the
        commands, one step after the other."""
        res: list[Out] = []
        for d in out.decisions:
            res.append(Out(self.decisions, d.SerializeToString(), key=d.workload_id.encode()))
            if d.kind in (decision_pb2.DECISION_KIND_RELEASED, decision_pb2.DECISION_KIND_PREEMPTED,
                          decision_pb2.DECISION_KIND_ROLLED_BACK):
                tables.delete(self.workloads, d.workload_id)
            elif d.kind != decision_pb2.DECISION_KIND_REJECTED:
                tables.put(self.workloads, d.workload_id, d.SerializeToString())
        for st in out.statuses:
            res.append(Out(self.statuses, st.SerializeToString(), key=st.workload_id.encode()))
        for a in out.alarms:
            res.append(Out(self.alarms, a.SerializeToString(), key=a.workload_id.encode()))
        for ap in out.approvals:
            res.append(Out(self.approvals, ap.SerializeToString(), key=ap.workload_id.encode()))
        return res


def _newest_head(records: list[Any], upto: int) -> decider_pb2.DeciderSnapshot | None:
    """The last head in `records` covering at most `upto` (a newer one cannot be trusted: its
    offsets were not committed, or the group's offsets were reset)."""
    head = None
    for r in records:
        snap = decider_pb2.DeciderSnapshot.FromString(r.value or b"")
        if snap.log_offset <= upto:
            head = snap
    return head


def install(tandem: Any) -> DeciderMemory:
    workloads = global_table(tandem.app, "workloads")
    tandem.tables["workloads"] = workloads
    memory = DeciderMemory(tandem, workloads)
    tandem.decider = memory
    return memory
