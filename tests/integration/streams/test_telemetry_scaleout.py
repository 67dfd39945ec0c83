"""Two workers share the telemetry partitions (consumer group "<app_id>.telemetry"): every
sample is folded, none twice, and both workers' global `link_metrics` see every link."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
from itest_wait import until
from aiokafka import AIOKafkaProducer

from tandem.events import new_meta
from tandem.streams import topics as T
from tandem.streams.agents import telemetry as telemetry_agent
from tandem.streams.app import create_app
from tandem.streams.settings import Settings
from tandem.v1 import inventory_pb2 as K, telemetry_pb2 as tm

pytestmark = pytest.mark.integration

LINKS = [f"l{i}" for i in range(12)]


async def test_two_workers_share_telemetry(kafka_bootstrap: str, tandem_topics: str,
                                           tmp_path: Any) -> None:
    base = Settings(broker=kafka_bootstrap, topic_prefix=tandem_topics,
                    app_id=f"{tandem_topics}app", web_enabled=False,
                    data_dir=str(tmp_path / "a"), session_timeout_s=10)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    inv = T.SPECS[T.INVENTORY_BASE].name(tandem_topics)
    tel = T.SPECS[T.TELEMETRY_BASE].name(tandem_topics)
    for s in ("x", "y"):
        await producer.send_and_wait(inv, key=f"site/{s}".encode(), value=K.InventoryEvent(
            meta=new_meta("test"), site=K.Site(site_id=s)).SerializeToString())
    for lid in LINKS:
        await producer.send_and_wait(inv, key=f"link/{lid}".encode(), value=K.InventoryEvent(
            meta=new_meta("test"), link=K.Link(link_id=lid, site_a="x", site_b="y",
                                               capacity_ab_mbps=100, capacity_ba_mbps=100,
                                               latency_ms=5)).SerializeToString())
    workers = [create_app(base), create_app(replace(base, data_dir=str(tmp_path / "b")))]
    folds = [telemetry_agent.install(w).fold for w in workers]
    for w in workers:
        await w.app.start()
    t0 = time.time() - 3000
    sent = 0
    try:
        for w in workers:
            await until(lambda w=w: len(list(w.tables["inventory"].keys())) >= 2 + len(LINKS),
                        "the inventory folded", 40)
        # Keep sending until both workers have folded some (the group has rebalanced).
        async def shared() -> bool:
            nonlocal sent
            if all(f.stats.records for f in folds):
                return True
            for lid in LINKS:
                s = tm.TelemetrySample(meta=new_meta("test", at=t0 + sent), link=tm.LinkSample(
                    link_id=lid, from_site="x", utilisation_mbps=1, latency_ms=5, loss=0))
                await producer.send(tel, key=lid.encode(), value=s.SerializeToString())
                sent += 1
            await producer.flush()
            return False

        await until(shared, "the two workers to share the partitions", 90, every=0.5)

        def counted(w: Any) -> int:
            total = 0
            for lid in LINKS:
                raw = w.tables["link_metrics"].get(lid)
                if raw:
                    total += sum(d.samples for d in tm.LinkMetrics.FromString(raw).directions)
            return total
        await until(lambda: all(counted(w) == sent for w in workers),
                    lambda: f"sent {sent}, counted {[counted(w) for w in workers]}", 40, every=0.2)
        assert sum(f.stats.records for f in folds) >= sent  # redelivery allowed, not loss
        # Each worker reports its own partitions and both catch up (a partition handed over
        # mid-run shows the new owner's lag until it has fetched past the handed-over offset).
        lags: list[Any] = []

        async def caught_up() -> bool:
            lags[:] = [await w.loops["telemetry"].lag() for w in workers]
            assert all(lags) and not set(lags[0]) & set(lags[1])
            assert len(lags[0]) + len(lags[1]) == T.SPECS[T.TELEMETRY_BASE].partitions
            return all(n == 0 for lag in lags for n in lag.values())

        await until(caught_up, lambda: f"both to catch up: {lags}", 30, every=0.2)
        assert all(f.stats.dead_letters == 0 for f in folds)
    finally:
        await producer.stop()
        for w in workers:
            await w.app.stop()
