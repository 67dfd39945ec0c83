"""Publishes SDN commands to Kafka and waits for the control units' acknowledgements.

Stands in for the stream processor's command side in the integration tests, the benchmarks
and by-hand sessions (docs/SDN.md): it carries no policy, it only sends what it is given, step
by step (each step acknowledged by every site before the next, as the executor does with the
steps of `tandem.steps`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any


class AckTimeout(RuntimeError):
    pass


class SdnDriver:
    def __init__(self, bootstrap: str, prefix: str | None = None) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self._acks: dict[str, Any] = {}
        self.ack_keys: dict[str, str] = {}  # command id → the record key its ack carried
        self._ack_times: dict[str, float] = {}
        self._arrived = asyncio.Event()

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        from tandem.streams import topics as T

        self.T = T
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=0, acks=1)
        await self.producer.start()
        ack_topic = T.SPECS[T.SDN_ACKS_BASE].name(self.prefix)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                         fetch_max_wait_ms=10, isolation_level="read_committed")
        await self.consumer.start()
        parts = self.consumer.partitions_for_topic(ack_topic)
        if not parts:
            from tandem.streams.compat import aiokafka_private

            await aiokafka_private.force_metadata_update(self.consumer)  # created by the units
            parts = self.consumer.partitions_for_topic(ack_topic) or {0}
        tps = [TopicPartition(ack_topic, p) for p in sorted(parts)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the position now, so acks sent after this are seen
            await self.consumer.position(tp)
        self._task = asyncio.create_task(self._pump())

    async def warm(self, sites: Iterable[str]) -> None:
        """Fetch topic metadata for these sites' command topics now (not on first publish)."""
        for site in sites:
            await self.producer.partitions_for(self.T.sdn_commands_topic(site, self.prefix))

    async def _pump(self) -> None:
        from tandem.v1 import commands_pb2 as c

        async for rec in self.consumer:
            try:
                ack = c.SdnAck.FromString(rec.value)
            except Exception:
                continue
            self._acks[ack.command_id] = ack
            self.ack_keys[ack.command_id] = (rec.key or b"").decode(errors="replace")
            self._ack_times[ack.command_id] = time.perf_counter()
            self._arrived.set()

    async def stop(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):
            pass
        await self.consumer.stop()
        await self.producer.stop()

    async def publish(self, cmds: Iterable[Any]) -> list[str]:
        from tandem.sdn.kafka_io import send_many

        ids = []
        records = []
        for cmd in cmds:
            topic = self.T.sdn_commands_topic(cmd.site_id, self.prefix)
            key = (cmd.install.reservation_id if cmd.WhichOneof("op") == "install"
                   else cmd.remove.reservation_id)
            records.append((topic, key.encode(), cmd.SerializeToString()))
            ids.append(cmd.command_id)
        await send_many(self.producer, records)
        return ids

    async def wait_acks(self, ids: Iterable[str], timeout: float = 30.0) -> dict[str, Any]:
        want = set(ids)
        deadline = time.monotonic() + timeout
        while not want <= self._acks.keys():
            left = deadline - time.monotonic()
            if left <= 0:
                missing = sorted(want - self._acks.keys())
                raise AckTimeout(f"no ack within {timeout:.0f} s for {len(missing)} commands, "
                                 f"e.g. {missing[:3]}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), min(left, 0.5))
            except asyncio.TimeoutError:
                pass
        return {i: self._acks[i] for i in want}

    def ack_time(self, command_id: str) -> float:
        return self._ack_times[command_id]

    async def run_steps(self, steps: Iterable[Iterable[Any]], timeout: float = 30.0) -> dict[str, Any]:
        """Send each step, wait for all its acks, then the next; returns every ack."""
        out: dict[str, Any] = {}
        for step in steps:
            out.update(await self.wait_acks(await self.publish(step), timeout))
        return out
