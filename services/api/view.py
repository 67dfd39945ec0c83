"""The API server's own fold of the decider log: what `WhatIf` and the read calls answer from,
and where `PlaceAndConnect` and `Release` see their decisions arrive.

Why a fold of the log rather than the decisions topic: the decider log is the one total order
of every input that can change a decision, and folding it with the pure
`tandem.decider.Decider` (as `tandem replay` and a worker taking over do) gives the very state
the decider decides on — topology, link conditions, reservations — and the very decisions it
published (same ids, same fields). A what-if is then the engine's same code path, run on a
scratch copy of that state (`what_if`): no Kafka round trip, nothing committed. The log and
the decisions are committed in one transaction, so a decision derived here is already on
tandem.decisions.

The same consumer folds `tandem.workload-status` (every partition, `read_committed`, from
offset 0) into a `StatusFold`: how carrying each decision out went (PROVISIONING, ACTIVE,
FAILED, ...), which GetWorkload shows and `PlaceAndConnect(wait_active)` waits for. It also
reads `tandem.decisions` from its end, only to answer a call in flight as soon as the decider
published its decision (`_answer_early`), before this fold derives it again.

The log is read with `read_committed` from offset 0 (snapshots would bound a restart: not
used yet). `serving` is true once both folds have reached the ends their partitions had when
reading started, and while Kafka answers (the end offsets are asked for every second).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from tandem.decider import Decider, Outputs
from tandem.events import new_meta
from tandem.streams import topics as T
from tandem.streams.heap import settle_heap
from tandem.streams.readback import partitions_of
from tandem.v1 import decider_pb2, decision_pb2, workload_pb2
from tandem.validation import InvalidEvent

from tandem.services.api.errors import Unavailable
from tandem.services.api.events import Lookup
from tandem.services.api.status import StatusFold
from tandem.services.api.whatif import Undoing, scratch

log = logging.getLogger(__name__)
SOURCE = "api"
CHECK_EVERY_S = 1.0  # how often Kafka is asked for the log's end (liveness and catch-up)
KAFKA_TIMEOUT_S = 3.0


class DeciderView:
    """Tails `tandem.decider` (partition 0) and folds every record, keeping the answers by
    request id and each workload's last decision."""

    def __init__(self, broker: str, prefix: str = "") -> None:
        self.broker, self.prefix = broker, prefix
        self.topic = T.SPECS[T.DECIDER_BASE].name(prefix)
        self.status_topic = T.SPECS[T.WORKLOAD_STATUS_BASE].name(prefix)
        self.decisions_topic = T.SPECS[T.DECISIONS_BASE].name(prefix)
        self.decider = Decider()
        self.statuses = StatusFold()
        self.position = 0  # the next log offset to fold
        self.refused = 0  # log records the fold refused (the worker dead-lettered them too)
        self.by_request: dict[str, decision_pb2.Decision] = {}
        self.latest: dict[str, decision_pb2.Decision] = {}
        # Where each workload's groups were last placed (a release or rollback places nothing,
        # but the events after it are still about those sites: WatchEvents' site filter).
        self.placed_at: dict[str, frozenset[str]] = {}
        self.caught_up = False  # reached the log's end as it was when reading started
        self.kafka_ok = False
        self.error = ""  # the last Kafka error, while it lasts
        self.listeners: list[Callable[[bool], Awaitable[None]]] = []
        self._waiters: dict[str, list[asyncio.Future[decision_pb2.Decision]]] = {}
        self._ends: dict[tuple[str, str], list[asyncio.Future[decision_pb2.WorkloadStatus]]] = {}
        self._status_pos: dict[TopicPartition, int] = {}
        # Decider inputs the API itself sent (maintenance) → what folding them gave, once
        # folded: (the input, its decisions). Only inputs asked for are kept.
        self.expected: set[str] = set()
        self.applied: dict[str, tuple[decider_pb2.DeciderInput, list[decision_pb2.Decision]]] = {}
        self._advanced = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._serving = False

    @property
    def serving(self) -> bool:
        return self.caught_up and self.kafka_ok

    # ------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tandem-api-view")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.broker, enable_auto_commit=False,
                isolation_level="read_committed", auto_offset_reset="earliest",
                max_partition_fetch_bytes=4 * 1024 * 1024, client_id="tandem-api-view",
                request_timeout_ms=int(KAFKA_TIMEOUT_S * 1000) + 2000)
            try:
                await asyncio.wait_for(consumer.start(), 10 * KAFKA_TIMEOUT_S)
                await partitions_of(consumer, self.topic)
                tp = TopicPartition(self.topic, 0)
                stps = [TopicPartition(self.status_topic, p) for p in
                        sorted(await partitions_of(consumer, self.status_topic))]
                # The decisions topic only answers calls in flight early (see `_tail`): read
                # from its end; anything older is the fold's to answer.
                dtps = [TopicPartition(self.decisions_topic, p) for p in
                        sorted(await partitions_of(consumer, self.decisions_topic))]
                consumer.assign([tp, *stps, *dtps])
                consumer.seek(tp, self.position)
                for stp in stps:
                    consumer.seek(stp, self._status_pos.get(stp, 0))
                await consumer.seek_to_end(*dtps)
                self._consumer = consumer
                await self._tail(consumer, tp, stps, dtps)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka away, topic missing: say so, retry
                self.error = f"cannot read {self.topic} on {self.broker}: {exc!r}"
                log.warning("api view: %s; retrying in %.1f s", self.error, backoff)
                self.kafka_ok = False
                await self._tell()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                self._consumer = None
                await consumer.stop()

    async def _tail(self, consumer: AIOKafkaConsumer, tp: TopicPartition,
                    stps: list[TopicPartition], dtps: list[TopicPartition]) -> None:
        targets = await self._ends_of(consumer, [tp, *stps])
        self.kafka_ok, self.error = True, ""
        checked = time.monotonic()
        while True:
            batch = await consumer.getmany(timeout_ms=100, max_records=500)
            if self._answer_early(r.value for d in dtps for r in batch.get(d, [])):
                await asyncio.sleep(0)  # the answered calls reply before the fold below runs
            for r in batch.get(tp, []):
                self._fold(r.value, r.timestamp / 1000.0)
            for stp in stps:
                for r in batch.get(stp, []):
                    self._fold_status(r.value)
                self._status_pos[stp] = await consumer.position(stp)
            self.position = await consumer.position(tp)
            if batch:
                self._wake_ends()
                self._advanced.set()
                self._advanced = asyncio.Event()
            if time.monotonic() - checked >= CHECK_EVERY_S:
                checked = time.monotonic()
                targets = await self._ends_of(consumer, [tp, *stps])  # raises if Kafka is away
            if not self.caught_up and self.position >= targets[tp] and all(
                    self._status_pos.get(stp, 0) >= targets[stp] for stp in stps):
                self.caught_up = True
                settle_heap("api view")  # the fold as of now: out of full collections
                log.info("api view: caught up with %s at offset %d (%d decisions)", self.topic,
                         self.position, len(self.by_request))
            await self._tell()
            await asyncio.sleep(0)

    async def _ends_of(self, consumer: AIOKafkaConsumer,
                       tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        ends = await asyncio.wait_for(consumer.end_offsets(tps), KAFKA_TIMEOUT_S)
        self.kafka_ok = True
        return {k: int(v) for k, v in ends.items()}

    async def _tell(self) -> None:
        if self.serving != self._serving:
            self._serving = self.serving
            for listener in self.listeners:
                await listener(self._serving)

    def _answer_early(self, values: Iterable[bytes | None]) -> bool:
        """Answer calls waiting for a request id from the decision the decider published
        (`tandem.decisions`, the same transaction as its log record), without waiting for
        this server's fold to derive it again (5-20 ms with 1,000 workloads). The first
        decision carrying a request id is the one answering it: later decisions about that
        workload (a reroute, ...) come from later inputs. True when one was answered."""
        answered = False
        for value in values:
            if not self._waiters:
                return answered
            try:
                d = decision_pb2.Decision.FromString(value or b"")
            except Exception:  # not ours to judge
                continue
            for fut in self._waiters.pop(d.request_id, []):
                if not fut.done():
                    fut.set_result(d)
                    answered = True
        return answered

    def _fold(self, value: bytes | None, at: float) -> None:
        out = self.decider.fold_record(value, at)
        if out.invalid is not None:
            self.refused += 1
            return
        if self.expected:  # rare: only while a maintenance call waits for its input
            inp = decider_pb2.DeciderInput.FromString(value or b"")
            if inp.meta.event_id in self.expected:
                self.expected.discard(inp.meta.event_id)
                self.applied[inp.meta.event_id] = (inp, list(out.decisions))
        self._index(out)

    def _fold_status(self, value: bytes | None) -> None:
        try:
            st = decision_pb2.WorkloadStatus.FromString(value or b"")
        except Exception:  # not ours to judge: the topic's consumers dead-letter it
            return
        self.statuses.fold(st)

    def _wake_ends(self) -> None:
        for key in list(self._ends):
            end = self.statuses.outcome(*key)
            if end is not None:
                for fut in self._ends.pop(key):
                    if not fut.done():
                        fut.set_result(end)

    def _index(self, out: Outputs) -> None:
        by_id = {d.meta.event_id: d for d in out.decisions}
        for d in out.decisions:
            self.latest[d.workload_id] = d
            if d.placements:
                self.placed_at[d.workload_id] = frozenset(p.site_id for p in d.placements)
        # A status is emitted exactly for the decision answering a request (index 0).
        for st in out.statuses:
            ans = by_id.get(st.decision_id)
            if ans is None or not ans.request_id:
                continue
            self.by_request[ans.request_id] = ans
            for fut in self._waiters.pop(ans.request_id, []):
                if not fut.done():
                    fut.set_result(ans)

    # --------------------------------------------------------------------------- answers
    async def wait_serving(self, timeout: float) -> None:
        """Return once the fold is current and Kafka answers; Unavailable otherwise. A server
        just started is given up to `timeout` to catch up; one that lost Kafka fails at once."""
        deadline = time.monotonic() + timeout
        while not self.serving:
            if self.error or time.monotonic() >= deadline:
                raise Unavailable(self.error or f"still reading the decider log ({self.topic}, "
                                                f"at offset {self.position})")
            await self._next(deadline)

    async def _next(self, deadline: float) -> None:
        """Wait for the fold to advance (or a tenth of a second, to re-check Kafka's state)."""
        try:
            await asyncio.wait_for(self._advanced.wait(),
                                   max(0.0, min(0.1, deadline - time.monotonic())))
        except asyncio.TimeoutError:
            pass

    async def sync(self, timeout: float) -> None:
        """Fold up to the log's current end (read-your-writes before saying NOT_FOUND)."""
        consumer = self._consumer
        if consumer is None:
            raise Unavailable(self.error or f"not reading {self.topic}")
        tp = TopicPartition(self.topic, 0)
        try:
            end = int((await asyncio.wait_for(consumer.end_offsets([tp]), timeout))[tp])
        except Exception as exc:
            raise Unavailable(f"cannot reach Kafka ({self.broker}): {exc!r}") from None
        deadline = time.monotonic() + timeout
        while self.position < end:
            if time.monotonic() >= deadline:
                raise Unavailable(f"decider log not folded up to {end} in time (at "
                                  f"{self.position})")
            await self._next(deadline)

    async def answer(self, request_id: str, timeout: float) -> decision_pb2.Decision | None:
        """The decision answering `request_id`, once folded; None after `timeout` seconds."""
        got = self.by_request.get(request_id)
        if got is not None:
            return got
        fut: asyncio.Future[decision_pb2.Decision] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(request_id, []).append(fut)
        try:
            return await asyncio.wait_for(fut, max(0.0, timeout))
        except asyncio.TimeoutError:
            return None
        finally:
            waiting = self._waiters.get(request_id, [])
            if fut in waiting:
                waiting.remove(fut)
            if not waiting:
                self._waiters.pop(request_id, None)

    async def outcome(self, workload_id: str, decision_id: str,
                      timeout: float) -> decision_pb2.WorkloadStatus | None:
        """The status that ended carrying out `decision_id` (StatusFold.outcome), once folded;
        None after `timeout` seconds."""
        got = self.statuses.outcome(workload_id, decision_id)
        if got is not None:
            return got
        key = (workload_id, decision_id)
        fut: asyncio.Future[decision_pb2.WorkloadStatus] = (
            asyncio.get_running_loop().create_future())
        self._ends.setdefault(key, []).append(fut)
        try:
            return await asyncio.wait_for(fut, max(0.0, timeout))
        except asyncio.TimeoutError:
            return None
        finally:
            waiting = self._ends.get(key, [])
            if fut in waiting:
                waiting.remove(fut)
            if not waiting:
                self._ends.pop(key, None)

    def check(self, event: workload_pb2.RequestEvent, now: float) -> None:
        """The decider's own checks of an order, against its current topology (raises
        InvalidEvent naming the field): what would make the worker dead-letter it."""
        inp = decider_pb2.DeciderInput(meta=new_meta(SOURCE, at=now), request=event)
        self.decider.check(inp, now)

    def what_if(self, event: workload_pb2.RequestEvent, now: float) -> decision_pb2.Decision:
        """The decision the decider would derive for `event` if it came now: the worker's own
        path (`Decider.admit`: decode, wrap, check, fold, engine) on a scratch copy."""
        lent = Undoing(self.decider.blocks)
        try:
            admitted = scratch(self.decider, lent).admit(  # type: ignore[arg-type]
                "request", event.SerializeToString(), now)
        finally:
            lent.undo()
        if admitted.outputs.invalid is not None:
            raise admitted.outputs.invalid
        if not admitted.outputs.decisions:
            raise InvalidEvent("invalid", f"request_id = {event.request_id!r}: answered before")
        return admitted.outputs.decisions[0]

    def lookup(self) -> Lookup:
        """What WatchEvents' filters need to know, answered from this fold as it stands."""
        def tenant_of(wid: str) -> str:
            d = self.latest.get(wid)
            return d.tenant if d is not None else ""

        def sites_of(wid: str) -> frozenset[str]:
            return self.placed_at.get(wid, frozenset())

        def ends_of(lid: str) -> frozenset[str]:
            ln = self.decider.topology.links.get(lid)
            return frozenset((ln.a, ln.b)) if ln is not None else frozenset()

        def kind_of(wid: str, did: str) -> int:
            d = self.latest.get(wid)
            return d.kind if d is not None and d.meta.event_id == did \
                else decision_pb2.DECISION_KIND_PLACED

        return Lookup(tenant_of, sites_of, ends_of, kind_of)

    def admitted(self) -> dict[str, Any]:
        """Workloads holding sites and paths now (engine decisions by workload id)."""
        st = self.decider.state
        return {} if st is None else dict(st.workloads)
