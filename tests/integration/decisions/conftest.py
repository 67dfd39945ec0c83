"""Helpers for the decision pipeline tests: a real in-process Faust worker, producing and
reading events on the real broker under the test's own topic prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from itest_wait import until
from aiokafka import AIOKafkaProducer

from tandem.events import new_meta
from tandem.inventory import inventory_key
from tandem.services.demo_data import demo_federation, web_db_order
from tandem.streams import topics as T
from tandem.streams.readback import read_all_partitions
from tandem.v1 import decider_pb2, link_state_pb2
from tandem.v1 import workload_pb2 as W


class Bus:
    """Produce Tandem events and read topics back, under one prefix."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.bootstrap, self.prefix = bootstrap, prefix
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")

    def name(self, base: str) -> str:
        return T.SPECS[base].name(self.prefix)

    async def send(self, base: str, msg: Any, key: bytes = b"k") -> None:
        await self.producer.send_and_wait(self.name(base), key=key, value=msg.SerializeToString())

    async def inventory(self) -> None:
        """Publish the demo federation and wait until the decider log holds all of it
        (requests travel another topic: sent earlier, they could be folded first)."""
        events = demo_federation()
        for ev in events:
            await self.producer.send_and_wait(self.name(T.INVENTORY_BASE),
                                              key=inventory_key(ev).encode(),
                                              value=ev.SerializeToString())
        await self.wait_read(self.name(T.DECIDER_BASE), decider_pb2.DeciderInput,
                             lambda xs: sum(x.HasField("inventory") for x in xs) >= len(events))

    async def settled(self, app_id: str, bases: tuple[str, ...] = (
            T.INVENTORY_BASE, T.REQUESTS_BASE, T.LINK_STATE_BASE, T.CONTROL_BASE),
            loop: str = "decider-inputs", timeout: float = 90.0) -> None:
        """Wait until the workers of `app_id` have committed every record of these topics:
        each input is then processed and its outputs committed (they commit together), so
        whatever the topics will ever hold for these inputs is on them now."""
        from tandem.streams.readback import wait_committed

        await wait_committed(self.bootstrap, f"{app_id}.{loop}",
                             [self.name(b) for b in bases], timeout)

    async def read(self, topic: str, schema: Any) -> list[Any]:
        return [schema.FromString(r.value) for r in await read_all_partitions(self.bootstrap, topic)]

    async def wait_read(self, topic: str, schema: Any, pred: Callable[[list[Any]], bool],
                        timeout: float = 45.0) -> list[Any]:
        got: list[Any] = []

        async def ok() -> bool:
            got[:] = await self.read(topic, schema)
            return pred(got)

        await until(ok, lambda: f"{topic}: the condition (have {len(got)})", timeout, every=0.3)
        return got


@pytest.fixture
async def bus(kafka_bootstrap: str, tandem_topics: str) -> AsyncIterator[Bus]:
    b = Bus(kafka_bootstrap, tandem_topics)
    await b.producer.start()
    try:
        yield b
    finally:
        await b.producer.stop()


def place(request_id: str, workload_id: str, bw: float = 300.0, web_site_rule: str = "EU",
          priority: int = W.PRIORITY_CLASS_STANDARD, vcpus: float = 4) -> W.RequestEvent:
    return W.RequestEvent(meta=new_meta("test"), request_id=request_id, place=web_db_order(
        workload_id, bw=bw, jurisdiction=web_site_rule, priority=priority, vcpus=vcpus))


def release(request_id: str, workload_id: str) -> W.RequestEvent:
    return W.RequestEvent(meta=new_meta("test"), request_id=request_id,
                          release=W.ReleaseRequest(tenant="acme", workload_id=workload_id))


def link_down(link_id: str) -> link_state_pb2.LinkStateEvent:
    return link_state_pb2.LinkStateEvent(meta=new_meta("test"), link_id=link_id,
                                         state=link_state_pb2.OPER_STATE_DOWN, cause="test")
