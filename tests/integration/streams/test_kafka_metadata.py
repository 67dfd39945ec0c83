"""A producer's batch for a topic it learned from its first (all-topics) metadata is delivered
even after a send to a newly created topic narrows its metadata (see
`tandem.streams.compat.aiokafka_producer_topic_tracking`): flushing never waits forever."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tandem.services.kafka_admin import ensure_topics
from tandem.streams import compat
from tandem.streams import topics as T

compat.apply_all()  # as every Tandem process does at its start


async def test_a_topic_known_from_startup_metadata_is_still_delivered(
        kafka_bootstrap: str, topic_prefix: str) -> None:
    old, new = f"{topic_prefix}known-at-start", f"{topic_prefix}created-later"
    spec = T.SPECS[T.ALARMS_BASE]
    await ensure_topics(kafka_bootstrap, [(old, spec)])
    # Long linger: the batch for `old` is still waiting when `new` is first sent to.
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=500)
    await producer.start()
    try:
        # A refresh before the first send fetches every topic (the tracked set is empty), as a
        # long-running worker's periodic refresh does.
        await producer.client.force_metadata_update()
        assert old in producer.client.cluster.topics()
        delivered = await producer.send(old, b"first")
        await ensure_topics(kafka_bootstrap, [(new, spec)])
        await producer.send_and_wait(new, b"second")
        await asyncio.wait_for(producer.flush(), 15)
        assert (await asyncio.wait_for(delivered, 1)).offset == 0
    finally:
        await asyncio.wait_for(producer.stop(), 20)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(old, 0)
        assert (await consumer.end_offsets([tp]))[tp] == 1
    finally:
        await consumer.stop()
