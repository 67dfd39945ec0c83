"""A topic Tandem or Faust creates is usable when creation returns: the broker's metadata
already shows it with a leader for every partition (`tandem.streams.topic_readiness`).

Without this, a Faust worker started right after creating its topics could be told "unknown
topic" by the broker, and its consumer group never formed (`make demo` hung at start-up)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaClient
from aiokafka.structs import TopicPartition

from tandem.services.kafka_admin import ensure_topics
from tandem.streams import topics as T
from tandem.streams.app import create_app
from tandem.streams.settings import Settings
from tandem.streams.compat.kafka_topic_visibility import wait_until_visible


@pytest.fixture
async def client(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaClient]:
    c = AIOKafkaClient(bootstrap_servers=kafka_bootstrap)
    await c.bootstrap()
    try:
        yield c
    finally:
        await c.close()


async def _unready(client: AIOKafkaClient, topics: list[str]) -> dict[str, str]:
    """What a fresh look at the broker's metadata (all of it: independent of the code under
    test) says is wrong with each topic."""
    cluster = await client.fetch_all_metadata()
    out = {}
    for t in topics:
        parts = cluster.partitions_for_topic(t)
        if not parts:
            out[t] = "unknown"
        elif any(cluster.leader_for_partition(TopicPartition(t, p)) in (None, -1) for p in parts):
            out[t] = "partition without a leader"
    return out


async def test_ensure_topics_returns_when_every_topic_is_in_the_metadata(
        kafka_bootstrap: str, topic_prefix: str, client: AIOKafkaClient) -> None:
    specs = T.core_topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, specs)
    assert await _unready(client, [n for n, _ in specs]) == {}


async def test_faust_declared_topic_is_in_the_metadata_when_declare_returns(
        kafka_bootstrap: str, topic_prefix: str, client: AIOKafkaClient, tmp_path: object) -> None:
    tandem = create_app(Settings(broker=kafka_bootstrap, topic_prefix=topic_prefix,
                                 app_id=f"{topic_prefix}app", web_enabled=False,
                                 data_dir=str(tmp_path)))
    name = f"{topic_prefix}declared-changelog"
    producer = tandem.app.producer
    await producer.start()
    try:
        await producer.create_topic(name, partitions=3, replication=1, compacting=True)
        assert await _unready(client, [name]) == {}
    finally:
        await producer.stop()


async def test_a_topic_that_never_appears_is_named_in_the_error(
        topic_prefix: str, client: AIOKafkaClient) -> None:
    never = f"{topic_prefix}never-created"
    with pytest.raises(TimeoutError, match=never):
        await wait_until_visible(client, [never], timeout=1.0)
