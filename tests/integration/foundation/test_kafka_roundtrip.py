"""Protobuf events through the real broker with aiokafka, and idempotent topic creation."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tandem.events import new_meta
from tandem.services.kafka_admin import delete_topics, delete_topics_with_prefix, ensure_topics
from tandem.streams import topics as T
from tandem.v1 import alarms_pb2, commands_pb2, decision_pb2, inventory_pb2, link_state_pb2
from tandem.v1 import telemetry_pb2, workload_pb2


def samples() -> dict[str, object]:
    m = lambda: new_meta("test", correlation_id="corr-1")  # noqa: E731
    return {
        T.INVENTORY_BASE: inventory_pb2.InventoryEvent(
            meta=m(), link=inventory_pb2.Link(link_id="l", site_a="a", site_b="b",
                                              kind=inventory_pb2.LINK_KIND_SATELLITE)),
        T.LINK_STATE_BASE: link_state_pb2.LinkStateEvent(
            meta=m(), link_id="l", state=link_state_pb2.OPER_STATE_DEGRADED),
        T.TELEMETRY_BASE: telemetry_pb2.TelemetrySample(
            meta=m(), link=telemetry_pb2.LinkSample(link_id="l", utilisation_mbps=12.5)),
        T.REQUESTS_BASE: workload_pb2.RequestEvent(
            meta=m(), request_id="r1",
            place=workload_pb2.WorkloadRequest(tenant="t", workload_id="w",
                                               groups=[workload_pb2.VmGroup(group_id="g", count=2)])),
        T.DECISIONS_BASE: decision_pb2.Decision(
            meta=m(), request_id="r1", kind=decision_pb2.DECISION_KIND_REJECTED,
            rejection=decision_pb2.Rejection(constraint="latency", detail="no path under 5 ms")),
        T.ALARMS_BASE: alarms_pb2.Alarm(meta=m(), severity=alarms_pb2.SEVERITY_MAJOR, text="x"),
        T.DEAD_LETTERS_BASE: alarms_pb2.DeadLetter(meta=m(), origin_topic="x", payload=b"\xff"),
        T.SDN_ACKS_BASE: commands_pb2.SdnAck(meta=m(), command_id="c", status=commands_pb2.ACK_STATUS_OK),
        T.COMPUTE_ACKS_BASE: commands_pb2.ComputeAck(meta=m(), command_id="c", vm_ref="vm-1"),
    }


async def test_every_event_type_roundtrips_through_kafka(kafka_bootstrap: str,
                                                         tandem_topics: str) -> None:
    prefix = tandem_topics
    events = samples()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for base, ev in events.items():
            await producer.send_and_wait(T.SPECS[base].name(prefix), key=b"k",
                                         value=ev.SerializeToString())  # type: ignore[attr-defined]
    finally:
        await producer.stop()
    for base, ev in events.items():
        consumer = AIOKafkaConsumer(T.SPECS[base].name(prefix), bootstrap_servers=kafka_bootstrap,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), 20)
        finally:
            await consumer.stop()
        got = T.SPECS[base].schema.FromString(record.value)
        assert got == ev, base
        assert got.meta.correlation_id == "corr-1" and got.meta.schema_version == 1


async def test_topic_creation_is_idempotent_and_applies_specs(kafka_bootstrap: str,
                                                              topic_prefix: str) -> None:
    specs = T.core_topics(topic_prefix) + T.site_topics(["ams"], topic_prefix)
    first = await ensure_topics(kafka_bootstrap, specs)
    assert set(first.values()) == {"created"}
    second = await ensure_topics(kafka_bootstrap, specs)
    assert set(second.values()) == {"exists"}
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = {d["topic"]: d for d in await admin.describe_topics([n for n, _ in specs])}
        for name, spec in specs:
            assert len(described[name]["partitions"]) == spec.partitions, name
        inv = T.SPECS[T.INVENTORY_BASE].name(topic_prefix)
        [res] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, inv, {"cleanup.policy": None})])
        entries = {e[0]: e[1] for e in res.resources[0][4]}
        assert entries["cleanup.policy"] == "compact"
    finally:
        await admin.close()


async def test_deleting_by_prefix_takes_every_topic_under_it_and_nothing_else(
        kafka_bootstrap: str, topic_prefix: str) -> None:
    ours = T.core_topics(topic_prefix) + [(f"{topic_prefix}app-inventory-changelog",
                                           T.SPECS[T.INVENTORY_BASE])]
    sibling = T.core_topics(topic_prefix.rstrip(".") + "x.")[:1]  # same start, other prefix
    await ensure_topics(kafka_bootstrap, ours + sibling)
    try:
        deleted = await delete_topics_with_prefix(kafka_bootstrap, topic_prefix)
        assert sorted(deleted) == sorted(n for n, _ in ours)
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            left = [t for t in await admin.list_topics()
                    if t.startswith(topic_prefix.rstrip("."))]
        finally:
            await admin.close()
        assert left == [sibling[0][0]]
        with pytest.raises(ValueError, match="refusing"):
            await delete_topics_with_prefix(kafka_bootstrap, "")
        with pytest.raises(ValueError, match="refusing"):
            await delete_topics_with_prefix(kafka_bootstrap, "test")
    finally:
        await delete_topics(kafka_bootstrap, [sibling[0][0]])
