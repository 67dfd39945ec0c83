"""A real Faust worker (not test_context) folding inventory events from the real broker,
dead-lettering bad records with their origin and reason, and going on."""

from __future__ import annotations

import math
import time

from itest_wait import until
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tandem.events import new_meta
from tandem.inventory import inventory_key
from tandem.streams import topics as T
from tandem.streams.app import Tandem
from tandem.streams.web import group_state
from tandem.v1 import alarms_pb2
from tandem.v1 import inventory_pb2 as K


def site(sid: str) -> K.InventoryEvent:
    return K.InventoryEvent(meta=new_meta("test"), site=K.Site(site_id=sid, name=sid.upper()))


def link(lid: str, a: str, b: str, cap: float = 100.0) -> K.InventoryEvent:
    return K.InventoryEvent(meta=new_meta("test"), link=K.Link(
        link_id=lid, site_a=a, site_b=b, capacity_ab_mbps=cap, capacity_ba_mbps=cap))


async def dead_letters(bootstrap: str, prefix: str, n: int) -> list[alarms_pb2.DeadLetter]:
    consumer = AIOKafkaConsumer(T.SPECS[T.DEAD_LETTERS_BASE].name(prefix),
                                bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    out: list[alarms_pb2.DeadLetter] = []
    try:
        deadline = time.monotonic() + 30
        while len(out) < n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(alarms_pb2.DeadLetter.FromString(r.value) for r in records)
    finally:
        await consumer.stop()
    return out


async def test_agent_folds_inventory_and_dead_letters_bad_input(worker: Tandem,
                                                                 kafka_bootstrap: str) -> None:
    prefix = worker.settings.topic_prefix
    topic = T.SPECS[T.INVENTORY_BASE].name(prefix)
    table = worker.tables["inventory"]
    bad_version = site("zzz")
    bad_version.meta.schema_version = 7
    records: list[tuple[bytes, bytes]] = [
        (b"site/ams", site("ams").SerializeToString()),             # offset 0
        (b"site/oops", b"\x0a\xff\xff garbage"),                     # 1: undecodable
        (b"link/x", link("x", "ams", "nowhere").SerializeToString()),  # 2: unknown site
        (b"site/zzz", bad_version.SerializeToString()),              # 3: unknown schema
        (b"link/nan", link("nan", "ams", "ams", math.nan).SerializeToString()),  # 4: NaN
        (b"site/fra", site("fra").SerializeToString()),             # 5: still processed
        (b"link/ams-fra", link("ams-fra", "ams", "fra").SerializeToString()),  # 6
    ]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, key=key, value=value)
    finally:
        await producer.stop()

    await until(lambda: "link/ams-fra" in table, "link/ams-fra in the table")
    assert sorted(table.keys()) == ["link/ams-fra", "site/ams", "site/fra"]
    group = group_state(worker.app)  # what /tandem/health reports of the consumer group
    assert group["state"] == "assigned" and group["error"] is None, group
    assert K.Link.FromString(table["link/ams-fra"]).capacity_ab_mbps == 100.0

    letters = await dead_letters(kafka_bootstrap, prefix, 4)
    by_offset = {d.origin_offset: d for d in letters}
    assert {o: d.reason for o, d in by_offset.items()} == {
        1: "undecodable", 2: "unknown_reference", 3: "unknown_schema_version", 4: "out_of_range"}
    for offset, d in by_offset.items():
        assert d.origin_topic == topic and d.origin_partition == 0
        assert d.origin_key == records[offset][0]
        assert d.payload == records[offset][1]  # kept whole, nothing lost
        assert d.consumer == "decider" and d.meta.event_id
    assert "nowhere" in by_offset[2].detail


async def test_removals_fold_and_cascade(worker: Tandem, kafka_bootstrap: str) -> None:
    prefix = worker.settings.topic_prefix
    topic = T.SPECS[T.INVENTORY_BASE].name(prefix)
    table = worker.tables["inventory"]
    removal = K.InventoryEvent(meta=new_meta("test"),
                               removed=K.ElementRemoved(kind=K.ElementRemoved.KIND_SITE, id="b"))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for ev in (site("a"), site("b"), site("c"), link("ab", "a", "b"), link("ac", "a", "c")):
            await producer.send_and_wait(topic, key=inventory_key(ev).encode(),
                                         value=ev.SerializeToString())
        await producer.send_and_wait(topic, key=b"site/b", value=removal.SerializeToString())
        await producer.send_and_wait(topic, key=b"site/d", value=site("d").SerializeToString())
    finally:
        await producer.stop()
    await until(lambda: "site/d" in table, "site/d in the table")
    assert sorted(table.keys()) == ["link/ac", "site/a", "site/c", "site/d"]
