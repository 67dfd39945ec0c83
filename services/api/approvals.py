"""Approvals at the API: which tenants' orders need one, and the webhook that tells a workflow
system about each hold (docs/API.md, "Approvals").

Why the policy is applied by the API: it is the front door OSS/BSS orders come through, and
setting `approval.required` on the order itself puts the policy's effect into the decider log,
so a replay holds exactly the orders that were held, whatever the policy says by then.

Why the webhook reads tandem.approvals in a consumer group: the decider publishes every hold
and its end there, in the transaction of the decision; a group (one per deployment, shared by
every API server) delivers each event once per deployment and resumes after a restart from
its committed offset. An event is committed only once the webhook answered 2xx, so delivery
is at least once; the `Idempotency-Key` header (the event id) lets the receiver drop repeats.
A PENDING event is retried until its hold's time limit (past that, approving is pointless and
the event is dropped with a log line); the others for `give_up_s`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition
from google.protobuf.json_format import MessageToJson

from tandem.approvals import DEFAULT_HOLD_S
from tandem.streams import topics as T
from tandem.v1 import approval_pb2, workload_pb2
from tandem.validation import MAX_HOLD_S

log = logging.getLogger(__name__)
A = approval_pb2


class PolicyError(ValueError):
    """A --require-approval value the server cannot use."""


@dataclass(frozen=True)
class Policy:
    """Tenants whose orders need an approval → how long they are held (0: the default)."""

    tenants: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, values: list[str]) -> Policy:
        """From `TENANT` or `TENANT:SECONDS` values (`--require-approval`, repeatable)."""
        out: dict[str, int] = {}
        for v in values:
            tenant, _, secs = v.partition(":")
            if not tenant:
                raise PolicyError(f"--require-approval {v!r}: TENANT or TENANT:SECONDS")
            try:
                hold = int(secs) if secs else 0
            except ValueError:
                raise PolicyError(f"--require-approval {v!r}: SECONDS must be a whole "
                                  "number") from None
            if not 0 <= hold <= MAX_HOLD_S:
                raise PolicyError(f"--require-approval {v!r}: SECONDS must be within "
                                  f"0..{MAX_HOLD_S}")
            out[tenant] = hold
        return cls(out)

    def apply(self, order: workload_pb2.WorkloadRequest) -> None:
        """Require the approval on `order` when its tenant needs one (an order that asks for
        one itself keeps its own time limit)."""
        if order.tenant in self.tenants and not order.approval.required:
            order.approval.required = True
            order.approval.hold_seconds = self.tenants[order.tenant]

    def describe(self) -> str:
        if not self.tenants:
            return "no tenant needs approval"
        return "approval needed for " + ", ".join(
            f"{t} (held {s or DEFAULT_HOLD_S} s)" for t, s in sorted(self.tenants.items()))


@dataclass
class WebhookStats:
    delivered: int = 0
    attempts_failed: int = 0
    dropped: int = 0


class Webhook:
    """Posts every event of tandem.approvals (protobuf JSON) to `url`."""

    def __init__(self, url: str, broker: str, prefix: str = "", token: str = "",
                 group: str = "", give_up_s: float = 3600.0, timeout_s: float = 10.0) -> None:
        self.url, self.broker, self.token = url, broker, token
        self.group = group or f"{prefix}tandem-api.approval-webhook"
        self.topic = T.SPECS[T.APPROVALS_BASE].name(prefix)
        self.give_up_s, self.timeout_s = give_up_s, timeout_s
        self.stats = WebhookStats()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="approval-webhook")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:  # a broker away: the consumer is made again, from the committed offsets
            consumer = AIOKafkaConsumer(
                self.topic, bootstrap_servers=self.broker, group_id=self.group,
                enable_auto_commit=False, auto_offset_reset="earliest",
                isolation_level="read_committed", client_id="tandem-api-webhook")
            try:
                await consumer.start()
                log.info("api: approval webhook: posting %s to %s", self.topic, self.url)
                async with aiohttp.ClientSession(
                        timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as http:
                    while True:
                        batch = await consumer.getmany(timeout_ms=500, max_records=50)
                        for tp, records in batch.items():
                            for r in records:
                                await self._deliver(http, r.value)
                                await consumer.commit({TopicPartition(tp.topic, tp.partition):
                                                       r.offset + 1})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("api: approval webhook: Kafka failed (%r); reading again in 2 s",
                            exc)
                await asyncio.sleep(2.0)
            finally:
                await consumer.stop()

    async def _deliver(self, http: aiohttp.ClientSession, value: bytes | None) -> None:
        try:
            ev = A.ApprovalEvent.FromString(value or b"")
        except Exception:
            log.error("api: approval webhook: an undecodable record on %s: skipped", self.topic)
            self.stats.dropped += 1
            return
        state = A.ApprovalState.Name(ev.state)
        body = MessageToJson(ev)
        headers = {"Content-Type": "application/json", "Idempotency-Key": ev.meta.event_id,
                   "X-Tandem-Approval-State": state}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        until = ev.until.seconds + ev.until.nanos / 1e9
        give_up = until if ev.state == A.APPROVAL_STATE_PENDING else time.time() + self.give_up_s
        delay = 0.5
        while True:
            why = ""
            try:
                async with http.post(self.url, data=body, headers=headers) as resp:
                    if 200 <= resp.status < 300:
                        self.stats.delivered += 1
                        log.info("api: approval webhook: %s of %s (hold %s) delivered",
                                 state, ev.workload_id, ev.hold_id)
                        return
                    why = f"HTTP {resp.status}"
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                why = repr(exc)
            self.stats.attempts_failed += 1
            if time.time() + delay >= give_up:
                self.stats.dropped += 1
                log.error("api: approval webhook: %s of %s (hold %s) not delivered (%s), "
                          "given up: %s", state, ev.workload_id, ev.hold_id, why,
                          "its hold expired" if ev.state == A.APPROVAL_STATE_PENDING
                          else f"retried for {self.give_up_s:.0f} s")
                return
            log.warning("api: approval webhook: %s of %s refused (%s); again in %.1f s",
                        state, ev.workload_id, why, delay)
            await asyncio.sleep(delay)  # backoff between attempts
            delay = min(30.0, delay * 2)
