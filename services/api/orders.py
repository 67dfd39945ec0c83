"""Orders through the API: onto tandem.requests as the CLI and the demo send them, answered
from the server's fold of the decider log.

Idempotency: the request id is derived from tenant and idempotency key
(`convert.request_id_for`), and the decider answers a request id once. A key already answered
returns that answer without sending anything; a key answered (or in flight on this server)
for a different order is ALREADY_EXISTS; two calls racing with the same key and order may both
send it, and the decider still decides it once — both get that one decision.

Deadlines: the order is sent only while the call's deadline has not passed; if the decision
does not arrive in time the call ends DEADLINE_EXCEEDED saying the order was sent under which
request id (repeating the call with the same key returns the decision once it is made).

wait_active: once decided, the call also waits (same deadline) for the status that ends
carrying the decision out (ACTIVE, FAILED, ROLLED_BACK: `StatusFold.outcome`). A deadline
passing then is DEADLINE_EXCEEDED reporting the effect: the decision id and the phase reached.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaProducer

from tandem.events import new_meta
from tandem.streams import topics as T
from tandem.v1 import api_pb2, decision_pb2, workload_pb2

from tandem.services.api import convert
from tandem.services.api.errors import (AlreadyExists, BadRequest, DeadlineExceeded, Infeasible,
                                        NotFound, Unavailable)
from tandem.services.api.view import SOURCE, KAFKA_TIMEOUT_S, DeciderView

log = logging.getLogger(__name__)
DEFAULT_WAIT_S = 30.0  # a call without a deadline waits this long for its decision
STARTUP_WAIT_S = 5.0  # a call made while the server is still reading the log waits this long


class Orders:
    """Sends orders and waits for their decisions."""

    def __init__(self, view: DeciderView, broker: str, prefix: str = "") -> None:
        self.view = view
        self.broker = broker
        self.topic = T.SPECS[T.REQUESTS_BASE].name(prefix)
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._inflight: dict[str, tuple[bytes, int]] = {}  # request id -> (order digest, calls)

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    # ----------------------------------------------------------------------------- calls
    async def place(self, call: api_pb2.PlaceAndConnectRequest, timeout: float | None
                    ) -> tuple[decision_pb2.Decision, str, decision_pb2.WorkloadStatus | None]:
        """The decision, its request id and (with wait_active) the status that ended
        carrying it out."""
        convert.check_place(call, need_key=True)
        deadline = time.monotonic() + (DEFAULT_WAIT_S if timeout is None else timeout)
        w = call.workload
        rid = convert.request_id_for(w.tenant, call.idempotency_key)
        event = workload_pb2.RequestEvent(meta=new_meta(SOURCE, correlation_id=rid),
                                          request_id=rid, place=w)

        async def not_anothers() -> None:
            # Workload ids are one namespace for the decider (an order for an admitted id is a
            # change of that workload): another tenant's id must not be changed through it.
            held = self.view.admitted().get(w.workload_id)
            if held is not None and held.holds and held.tenant != w.tenant:
                raise AlreadyExists(f"workload.workload_id = {w.workload_id!r} is in use by "
                                    "another tenant (workload ids are global): choose another")

        d = await self._submit(event, rid, w.workload_id, _left(deadline), not_anothers)
        if d.kind == decision_pb2.DECISION_KIND_REJECTED:
            raise Infeasible(d)
        if not call.wait_active or d.HasField("hold"):
            return d, rid, None  # held: nothing runs before an approval (Approve)
        end = await self.view.outcome(d.workload_id, d.meta.event_id, _left(deadline))
        if end is None:
            now = self.view.statuses.latest(d.workload_id)
            where = ("no status yet" if now is None or now.decision_id != d.meta.event_id else
                     f"{decision_pb2.WorkloadPhase.Name(now.phase)}: {now.reason} "
                     f"({now.steps_done} of {now.steps} steps)")
            raise DeadlineExceeded(
                f"decided ({decision_pb2.DecisionKind.Name(d.kind)}, decision "
                f"{d.meta.event_id}, request {rid}) but not active within the deadline; now "
                f"{where}; follow it with GetWorkload or WatchEvents")
        return d, rid, end

    async def release(self, call: api_pb2.ReleaseWorkloadRequest,
                      timeout: float | None) -> tuple[decision_pb2.Decision, str]:
        convert.check_release(call)
        r = call.release
        rid = convert.request_id_for(r.tenant, call.idempotency_key)
        event = workload_pb2.RequestEvent(meta=new_meta(SOURCE, correlation_id=rid),
                                          request_id=rid, release=r)

        def holds() -> bool:
            wl = self.view.admitted().get(r.workload_id)
            return wl is not None and wl.holds and wl.tenant == r.tenant

        async def precheck() -> None:
            if not holds():
                await self.view.sync(KAFKA_TIMEOUT_S)
                if not holds():
                    raise NotFound(f"workload {r.workload_id!r} of tenant {r.tenant!r} is not "
                                   "admitted")

        d = await self._submit(event, rid, r.workload_id, timeout, precheck)
        if d.kind == decision_pb2.DECISION_KIND_REJECTED:
            raise NotFound(d.rejection.detail or "not admitted")
        return d, rid

    async def verdict(self, call: api_pb2.ApprovalCall, approve: bool, by: str,
                      timeout: float | None) -> tuple[decision_pb2.Decision, str]:
        """Approve or reject the order held for `call.workload_id`: the decision that answers
        the verdict (carried out, or the release / restoration). A workload with no order held
        is FAILED_PRECONDITION, decided by the decider itself (the hold may end meanwhile)."""
        bad = convert.check_key(call.idempotency_key)
        if not call.workload_id:
            bad.append(("workload_id", "required"))
        if bad:
            raise BadRequest(bad)
        rid = convert.request_id_for("approvals", call.idempotency_key)
        event = workload_pb2.RequestEvent(
            meta=new_meta(SOURCE, correlation_id=rid), request_id=rid,
            approval=workload_pb2.ApprovalVerdict(workload_id=call.workload_id, approve=approve,
                                                  hold_id=call.hold_id, by=by,
                                                  comment=call.comment))

        async def known() -> None:
            if call.workload_id not in self.view.latest:
                await self.view.sync(KAFKA_TIMEOUT_S)
                if call.workload_id not in self.view.latest:
                    raise NotFound(f"no workload {call.workload_id!r}")

        d = await self._submit(event, rid, call.workload_id, timeout, known)
        if d.kind == decision_pb2.DECISION_KIND_REJECTED:
            raise Infeasible(d)
        return d, rid

    # --------------------------------------------------------------------------- common
    async def _submit(self, event: workload_pb2.RequestEvent, rid: str, key: str,
                      timeout: float | None,
                      precheck: Callable[[], Awaitable[None]]) -> decision_pb2.Decision:
        deadline = time.monotonic() + (DEFAULT_WAIT_S if timeout is None else timeout)
        await self.view.wait_serving(min(STARTUP_WAIT_S, _left(deadline)))
        digest = convert.order_digest(event)
        answered = self.view.decider.requests_answered.get(rid)
        if answered is not None:
            if answered[1] != digest:
                raise AlreadyExists(f"idempotency key answered before ({answered[0]}) for a "
                                    "different order")
            return self.view.by_request[rid]
        flying = self._inflight.get(rid)
        if flying is not None and flying[0] != digest:
            raise AlreadyExists("idempotency key in use by a different order in flight")
        await precheck()
        self.view.check(event, time.time())  # what the decider would dead-letter
        self._inflight[rid] = (digest, (flying[1] if flying else 0) + 1)
        try:
            if _left(deadline) <= 0:
                raise DeadlineExceeded("deadline passed before the order was sent: nothing sent")
            await self._send(event, key, deadline)
            d = await self.view.answer(rid, _left(deadline))
        finally:
            left = self._inflight.get(rid)
            if left is not None and left[1] > 1:
                self._inflight[rid] = (left[0], left[1] - 1)
            else:
                self._inflight.pop(rid, None)
        if d is None:
            raise DeadlineExceeded(f"order sent as request {rid} but not decided within the "
                                   "deadline: repeat the call with the same idempotency key "
                                   "to get its decision")
        return d

    async def _send(self, event: workload_pb2.RequestEvent, key: str, deadline: float) -> None:
        await self.send_record(self.topic, key, event.SerializeToString(), deadline)

    async def send_record(self, topic: str, key: str, value: bytes, deadline: float) -> None:
        """One record onto `topic` (acks=all, idempotent producer) before `deadline`
        (monotonic); Unavailable when Kafka does not take it."""
        try:
            producer = await self._started(deadline)
            await asyncio.wait_for(producer.send_and_wait(topic, key=key.encode(), value=value),
                                   max(0.0, _left(deadline)))
        except asyncio.TimeoutError:
            raise Unavailable(f"Kafka ({self.broker}) did not take the order in time: it may or "
                              "may not have been sent; repeat with the same idempotency "
                              "key") from None
        except Exception as exc:
            raise Unavailable(f"cannot send the order to {topic} on {self.broker}: "
                              f"{exc!r}") from None

    async def _started(self, deadline: float) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(bootstrap_servers=self.broker, acks="all",
                                            enable_idempotence=True,
                                            client_id="tandem-api-orders")
                try:
                    await asyncio.wait_for(producer.start(), max(0.0, _left(deadline)))
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer


def _left(deadline: float) -> float:
    return deadline - time.monotonic()
