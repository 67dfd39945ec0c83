"""NOC JSON mirrors: decisions, alarms and link state re-published as JSON, readable by a
plain aiokafka consumer; undecodable records are dead-lettered with their origin."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tandem.events import new_meta
from tandem.streams import topics as T
from tandem.streams.agents import noc_mirror
from tandem.streams.app import Tandem, create_app
from tandem.streams.settings import Settings
from tandem.v1 import alarms_pb2, decision_pb2, link_state_pb2 as L

pytestmark = pytest.mark.integration


@pytest.fixture
async def mirror_worker(kafka_bootstrap: str, tandem_topics: str,
                        tmp_path: Any) -> AsyncIterator[Tandem]:
    settings = Settings(broker=kafka_bootstrap, topic_prefix=tandem_topics,
                        app_id=f"{tandem_topics}app", web_enabled=False, data_dir=str(tmp_path))
    tandem = create_app(settings)
    noc_mirror.install(tandem)
    await tandem.app.start()
    try:
        yield tandem
    finally:
        await tandem.app.stop()


async def read_json(bootstrap: str, topic: str, n: int) -> list[tuple[bytes, Any]]:
    consumer = AIOKafkaConsumer(topic, isolation_level="read_committed", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    out: list[tuple[bytes, Any]] = []
    try:
        deadline = time.monotonic() + 40
        while len(out) < n and time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=300)).values():
                out.extend((r.key, json.loads(r.value)) for r in recs)
    finally:
        await consumer.stop()
    return out


async def test_mirrors_are_plain_json(mirror_worker: Tandem, kafka_bootstrap: str) -> None:
    prefix = mirror_worker.settings.topic_prefix
    name = lambda base: T.SPECS[base].name(prefix)  # noqa: E731
    decision = decision_pb2.Decision(meta=new_meta("test"), request_id="r1", workload_id="w1",
                                     cost=12.5)
    alarm = alarms_pb2.Alarm(meta=new_meta("test"), severity=alarms_pb2.SEVERITY_MAJOR,
                             link_id="ab", text="link ab degraded")
    state = L.LinkStateEvent(meta=new_meta("test"), link_id="ab", state=L.OPER_STATE_DEGRADED,
                             degradation=L.Degradation(metric="loss", observed=0.2,
                                                       threshold=0.01))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(name(T.DECISIONS_BASE), key=b"w1",
                                     value=decision.SerializeToString())
        junk = await producer.send_and_wait(name(T.DECISIONS_BASE), key=b"w2",
                                            value=b"\xff\xfe junk")
        await producer.send_and_wait(name(T.ALARMS_BASE), key=b"ab",
                                     value=alarm.SerializeToString())
        await producer.send_and_wait(name(T.LINK_STATE_BASE), key=b"ab",
                                     value=state.SerializeToString())
    finally:
        await producer.stop()

    [(k, d)] = await read_json(kafka_bootstrap, name(T.NOC_DECISIONS_JSON_BASE), 1)
    assert k == b"w1" and d["workloadId"] == "w1" and d["requestId"] == "r1"
    assert d["cost"] == 12.5 and d["meta"]["eventId"] == decision.meta.event_id
    [(k, a)] = await read_json(kafka_bootstrap, name(T.NOC_ALARMS_JSON_BASE), 1)
    assert k == b"ab" and a["severity"] == "SEVERITY_MAJOR" and a["text"] == "link ab degraded"
    [(k, s)] = await read_json(kafka_bootstrap, name(T.NOC_LINK_STATE_JSON_BASE), 1)
    assert s["state"] == "OPER_STATE_DEGRADED" and s["degradation"]["observed"] == 0.2
    assert s["meta"]["time"].endswith("Z")  # RFC 3339

    consumer = AIOKafkaConsumer(name(T.DEAD_LETTERS_BASE), bootstrap_servers=kafka_bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                isolation_level="read_committed")
    await consumer.start()
    letters: list[alarms_pb2.DeadLetter] = []
    try:
        deadline = time.monotonic() + 30
        while not letters and time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=300)).values():
                letters.extend(alarms_pb2.DeadLetter.FromString(r.value) for r in recs)
    finally:
        await consumer.stop()
    mine = [d for d in letters if d.consumer.startswith("noc-mirror")]
    assert len(mine) == 1
    d = mine[0]
    assert d.reason == "undecodable" and d.origin_topic == name(T.DECISIONS_BASE)
    assert d.origin_key == b"w2" and d.payload == b"\xff\xfe junk" 
    assert (d.origin_partition, d.origin_offset) == (junk.partition, junk.offset)
