"""The decider's memory on the worker that holds it: the pure `tandem.decider.Decider`, how it
is rebuilt when a worker takes the decider over, its snapshots, and its outputs as records.

Driven by `tandem.streams.decider_service` (one Kafka transaction per batch of inputs). A worker
taking over finds every input below the decider log's end decided *and* published (the log
records and the outputs were committed together) and rebuilds the decider up to that end,
publishing nothing. It does not fold the whole log, which grows forever: every
`SNAPSHOT_EVERY` inputs (or `SNAPSHOT_MAX_AGE_S` seconds) a snapshot is taken (`tandem.snapshot`:
the dedupe entries added since the last snapshot under "ids/<from>-<to>" on
`tandem.decider-snapshot-ids`, written in the batch's transaction; the engine state under key
"head" on `tandem.decider-snapshots`, encoded in a forked child (`forked`) while the decider goes
on, and written by the first transaction after the child is done), and a worker taking over
restores the newest head, checks it, and folds only the log after it. A head is only ever
committed after the log it covers (it names the offset up to which it holds); one not written
(the child failed, a batch aborted, the worker died) only means a longer tail to fold. Any
snapshot it cannot use (another format, a broken chain, a fingerprint that does not match) is
said in the log and the log is folded from offset 0 instead: slower, never wrong.
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
from tandem.streams.agents.forked import Forked
from tandem.streams.heap import settle_heap
from tandem.streams.readback import read_tail, read_topic
from tandem.streams.txloop import Out
from tandem.v1 import decider_pb2, decision_pb2

log = logging.getLogger(__name__)
# Inputs folded since the last snapshot: bounds a takeover's tail (~1.3 ms of fold each on
# GÉANT; 500 keeps a takeover under 2 s) against the cost of a snapshot (with 1,000 workloads
# admitted: 100-200 ms of CPU in the forked child that encodes the head, and the fork itself,
# 3-10 ms of the decider's loop).
SNAPSHOT_EVERY = 500
SNAPSHOT_MAX_AGE_S = 10.0  # ... or this long, if anything was folded
# A child still encoding a head after this long is stuck (it takes well under a second): it is
# killed and the next snapshot is taken when due, so snapshots never stop for good.
ENCODE_TIMEOUT_S = 120.0


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
        # The head being encoded in a child: (the log offset it covers, the child, when the
        # child was started, monotonic).
        self.encoding: tuple[int, Forked, float] | None = None
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
        next `recover`. A head still being encoded is dropped (its offset may not be
        committed)."""
        self.decider, self.next_offset = None, None
        self._drop_encoding()

    def _drop_encoding(self) -> None:
        if self.encoding is not None:
            self.encoding[1].cancel()
            self.encoding = None

    async def recover(self, upto: int) -> None:
        """The decider as it was after folding the log below `upto` (every input there is
        decided and published already): the newest usable snapshot, then the log after it."""
        started = time.monotonic()
        self._drop_encoding()
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
        settle_heap("decider")
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
        return self.encoding is None and (pending >= SNAPSHOT_EVERY or bool(
            pending and time.monotonic() - self.snapshot_at >= SNAPSHOT_MAX_AGE_S))

    def snapshot_outputs(self, upto: int) -> list[Out]:
        """Start a snapshot covering the log below `upto` (the offset after this batch's last
        log record): its dedupe delta now, for this batch's transaction (so the chain of
        deltas has no hole whatever happens to the head), and its head (the engine state as
        it is now) encoded in a forked child, written later by `finished_snapshot`."""
        d = self.decider
        assert d is not None
        delta = decider_pb2.DeciderSnapshot(meta=new_meta("streams/decider"), log_offset=upto,
                                            delta_from=self.snapshot_offset,
                                            format=snapshot.FORMAT, blob=snapshot.take_delta(d))
        self.snapshot_offset, self.snapshot_at = upto, time.monotonic()
        key = f"ids/{delta.delta_from:020d}-{upto:020d}".encode()
        outs = [Out(self.snapshot_ids, delta.SerializeToString(), key=key, partition=0)]
        try:
            self.encoding = (upto, Forked(lambda: _encode_head(d), "decider snapshot"),
                             time.monotonic())
        except OSError as exc:  # no fork (memory, process limit): encoded here, as before
            log.warning("decider: cannot fork to encode the snapshot (%r): encoding it inline",
                        exc)
            outs.append(self._head(upto, _encode_head(d)))
        return outs

    def finished_snapshot(self) -> list[Out]:
        """The head of the snapshot being encoded, once its child is done ([] before; [] too
        if the child failed: the next snapshot is then taken as due)."""
        if self.encoding is None:
            return []
        upto, child, started = self.encoding
        if not child.done():
            if time.monotonic() - started < ENCODE_TIMEOUT_S:
                return []
            log.warning("decider: the snapshot child for offset %d is still encoding after "
                        "%.0f s: killed (the next snapshot is taken when due)", upto,
                        ENCODE_TIMEOUT_S)
            child.cancel()
        self.encoding = None
        encoded = child.result()
        return [] if encoded is None else [self._head(upto, encoded)]

    def _head(self, upto: int, encoded: bytes) -> Out:
        fingerprint, blob = encoded[:_FINGERPRINT].decode(), encoded[_FINGERPRINT:]
        head = decider_pb2.DeciderSnapshot(meta=new_meta("streams/decider"), log_offset=upto,
                                           format=snapshot.FORMAT, blob=blob,
                                           fingerprint=fingerprint)
        self.snapshots_written += 1
        return Out(self.snapshots, head.SerializeToString(), key=b"head", partition=0)

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


_FINGERPRINT = 32  # hex digits of `snapshot.fingerprint`


def _encode_head(d: Decider) -> bytes:
    """The engine state of `d` with its fingerprint in front (what a child sends back)."""
    fingerprint = snapshot.fingerprint(d).encode()
    assert len(fingerprint) == _FINGERPRINT
    return fingerprint + snapshot.encode_state(d)


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
