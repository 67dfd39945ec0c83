"""The telemetry consumer inside a real Faust worker against the real broker: every accepted
encoding folds into `link_metrics`/`site_metrics`, bad records are dead-lettered with their
origin, and a degradation / recovery is published exactly once despite a flapping metric."""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from itest_wait import until
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from google.protobuf import json_format

from tandem.events import new_meta
from tandem.streams import topics as T
from tandem.streams.agents import telemetry as telemetry_agent
from tandem.streams.app import Tandem, create_app
from tandem.streams.readback import read_all_partitions, wait_committed
from tandem.streams.settings import Settings
from tandem.telemetry import Params
from tandem.v1 import alarms_pb2, inventory_pb2 as K, link_state_pb2 as L, telemetry_pb2 as tm

pytestmark = pytest.mark.integration

FAST = Params(tau_s=1.0, degrade_hold_s=3.0, degrade_samples=3, recover_hold_s=6.0,
              recover_samples=3)


@pytest.fixture
async def worker(kafka_bootstrap: str, tandem_topics: str, tmp_path: Any) -> AsyncIterator[Tandem]:
    settings = Settings(broker=kafka_bootstrap, topic_prefix=tandem_topics,
                        app_id=f"{tandem_topics}app", web_enabled=False, data_dir=str(tmp_path))
    tandem = create_app(settings)
    telemetry_agent.install(tandem, params=FAST)
    await tandem.app.start()
    try:
        yield tandem
    finally:
        await tandem.app.stop()


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for k, v in records:
            await producer.send_and_wait(topic, key=k, value=v)
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str, n: int, timeout: float = 30.0) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=300)).values():
                out.extend(recs)
    finally:
        await consumer.stop()
    return out


async def setup_inventory(tandem: Tandem, bootstrap: str) -> None:
    prefix = tandem.settings.topic_prefix
    evs = [K.InventoryEvent(meta=new_meta("test"), site=K.Site(site_id=s, name=s))
           for s in ("ams", "fra")]
    evs.append(K.InventoryEvent(meta=new_meta("test"), link=K.Link(
        link_id="ams-fra", site_a="ams", site_b="fra", capacity_ab_mbps=1000,
        capacity_ba_mbps=1000, latency_ms=20, loss=0.0)))
    await produce(bootstrap, T.SPECS[T.INVENTORY_BASE].name(prefix),
                  [(f"{'site' if e.HasField('site') else 'link'}/"
                    f"{e.site.site_id or e.link.link_id}".encode(), e.SerializeToString())
                   for e in evs])
    inv = tandem.tables["inventory"]
    await until(lambda: inv.get("link/ams-fra") is not None, "link/ams-fra in the inventory", 40)


def metrics(tandem: Tandem, link: str) -> tm.LinkMetrics | None:
    raw = tandem.tables["link_metrics"].get(link)
    return None if raw is None else tm.LinkMetrics.FromString(raw)


async def test_formats_fold_and_bad_records_dead_letter(worker: Tandem,
                                                        kafka_bootstrap: str) -> None:
    await setup_inventory(worker, kafka_bootstrap)
    prefix = worker.settings.topic_prefix
    topic = T.SPECS[T.TELEMETRY_BASE].name(prefix)
    t0 = time.time() - 100
    pb = tm.TelemetrySample(meta=new_meta("test", at=t0), link=tm.LinkSample(
        link_id="ams-fra", from_site="ams", utilisation_mbps=100, latency_ms=21, loss=0.0))
    pbjson = tm.TelemetrySample(meta=new_meta("test", at=t0 + 1), link=tm.LinkSample(
        link_id="ams-fra", from_site="fra", utilisation_mbps=50, latency_ms=22, loss=0.0))
    good = [
        (b"ams-fra", pb.SerializeToString()),
        (b"ams-fra", json_format.MessageToJson(pbjson, indent=None).encode()),
        (b"ams-fra", json.dumps({"link_id": "ams-fra", "from_site": "ams", "latency_ms": 23,
                                 "time": t0 + 2}).encode()),
        (b"ams-fra", json.dumps({"name": "ping", "tags": {"link_id": "ams-fra",
                                                          "from_site": "fra"},
                                 "fields": {"average_response_ms": 24.0,
                                            "percent_packet_loss": 0.0},
                                 "timestamp": int(t0 + 3)}).encode()),
        (b"ams", json.dumps({"site_id": "ams", "free_vcpus": 64, "time": t0}).encode()),
    ]
    bad = [
        (b"nowhere", json.dumps({"link_id": "nowhere", "from_site": "ams",
                                 "latency_ms": 1}).encode(), "unknown_reference"),
        (b"ams-fra", b'{"link_id": "ams-fra", "from_site": "ams", "latency_ms": NaN}',
         "out_of_range"),
        (b"ams-fra", b"\x0a\xff\xff garbage", "undecodable"),
        (b"ams-fra", json.dumps({"link_id": "ams-fra", "from_site": "par",
                                 "latency_ms": 1}).encode(), "unknown_reference"),
        (b"ams", json.dumps({"site_id": "ams", "free_vcpus": -3}).encode(), "out_of_range"),
        (b"zrh", json.dumps({"site_id": "zrh", "free_vcpus": 3}).encode(), "unknown_reference"),
    ]
    await produce(kafka_bootstrap, topic, good + [(k, v) for k, v, _ in bad])

    def folded() -> bool:
        m = metrics(worker, "ams-fra")
        return m is not None and sum(d.samples for d in m.directions) == 4
    await until(folded, "the samples folded", 40)
    m = metrics(worker, "ams-fra")
    assert m is not None and m.state == L.OPER_STATE_UP
    by_dir = {d.from_site: d for d in m.directions}
    assert by_dir["ams"].samples == 2 and by_dir["fra"].samples == 2
    assert 21 <= by_dir["ams"].latency_ms <= 23 and by_dir["ams"].has_utilisation
    assert by_dir["fra"].utilisation_mbps == 50  # Telegraf sample carried no utilisation
    await until(lambda: worker.tables["site_metrics"].get("ams") is not None,
                "site metrics of ams", 40)
    assert tm.SiteMetrics.FromString(worker.tables["site_metrics"]["ams"]).free_vcpus == 64

    letters = [alarms_pb2.DeadLetter.FromString(r.value) for r in await read_all(
        kafka_bootstrap, T.SPECS[T.DEAD_LETTERS_BASE].name(prefix), len(bad))]
    assert sorted((d.origin_key, d.payload, d.reason) for d in letters) == sorted(bad)
    for d in letters:
        assert d.origin_topic == topic and d.consumer == "telemetry-in" and d.detail
    # Origins are exact: every (partition, offset) points at the very record.
    offsets = {(d.origin_partition, d.origin_offset) for d in letters}
    assert len(offsets) == len(bad)


async def test_hysteresis_publishes_each_transition_once(worker: Tandem,
                                                         kafka_bootstrap: str) -> None:
    await setup_inventory(worker, kafka_bootstrap)
    prefix = worker.settings.topic_prefix
    topic = T.SPECS[T.TELEMETRY_BASE].name(prefix)
    t0 = time.time() - 1000
    seq: list[float] = [20.0] * 10 + [80.0] * 20  # healthy, then 80 ms for 20 s
    # flapping between outer (30) and inner (28) bands while degraded: no recovery
    seq += [27.0, 35.0] * 10
    seq += [20.0] * 30  # healthy for 30 s: one recovery
    seq += [20.0, 31.0] * 5  # brief excursions (hold not met): no new degradation
    records = []
    for i, lat in enumerate(seq):
        for frm in ("ams", "fra"):
            s = tm.TelemetrySample(meta=new_meta("test", at=t0 + i), link=tm.LinkSample(
                link_id="ams-fra", from_site=frm, utilisation_mbps=10, latency_ms=lat, loss=0))
            records.append((b"ams-fra", s.SerializeToString()))
    await produce(kafka_bootstrap, topic, records)

    def all_folded() -> bool:
        m = metrics(worker, "ams-fra")
        return m is not None and sum(d.samples for d in m.directions) == len(records)
    await until(all_folded, "every sample folded", 40)
    # Transitions are committed with the offsets that caused them: once the telemetry group
    # has committed every sample, anything extra would be on the topic.
    await wait_committed(kafka_bootstrap, f"{worker.settings.app_id}.telemetry", [topic], 40)
    states = [L.LinkStateEvent.FromString(r.value) for r in await read_all_partitions(
        kafka_bootstrap, T.SPECS[T.LINK_STATE_BASE].name(prefix))]
    assert [s.state for s in states] == [L.OPER_STATE_DEGRADED, L.OPER_STATE_UP]
    deg, up = states
    assert deg.link_id == "ams-fra" and deg.degradation.metric == "latency_ms"
    assert deg.degradation.threshold == 30.0 and deg.degradation.observed > 30.0
    assert deg.degradation.effective_capacity_ab_mbps == 1000.0
    assert deg.meta.source == "streams/telemetry" and deg.cause.startswith("telemetry:")
    assert up.meta.time.seconds - deg.meta.time.seconds >= 6
    alarms = [alarms_pb2.Alarm.FromString(r.value) for r in await read_all(
        kafka_bootstrap, T.SPECS[T.ALARMS_BASE].name(prefix), 3, timeout=5)]
    assert [(a.link_id, a.cleared) for a in alarms] == [("ams-fra", False), ("ams-fra", True)]
    m = metrics(worker, "ams-fra")
    assert m is not None and m.state == L.OPER_STATE_UP and not math.isnan(m.last_transition_time)


async def test_port_counters_map_to_link_directions(worker: Tandem, kafka_bootstrap: str) -> None:
    """PortSamples from an SDN unit: mapped through the inventory (site datapath id, link
    port) to a link direction; a rate comes from two successive counter samples."""
    prefix = worker.settings.topic_prefix
    evs = [K.InventoryEvent(meta=new_meta("test"), site=K.Site(site_id="ams", datapath_id=0xA)),
           K.InventoryEvent(meta=new_meta("test"), site=K.Site(site_id="fra", datapath_id=0xF)),
           K.InventoryEvent(meta=new_meta("test"), link=K.Link(
               link_id="ams-fra", site_a="ams", site_b="fra", capacity_ab_mbps=1000,
               capacity_ba_mbps=1000, latency_ms=20, port_a=2, port_b=3))]
    await produce(kafka_bootstrap, T.SPECS[T.INVENTORY_BASE].name(prefix),
                  [(b"k", e.SerializeToString()) for e in evs])
    await until(lambda: worker.tables["inventory"].get("link/ams-fra") is not None,
                "link/ams-fra in the inventory", 40)
    t0 = time.time() - 50

    def port(dp: int, no: int, tx: int, dur: float) -> bytes:
        return tm.TelemetrySample(meta=new_meta("sdn/test", at=t0 + dur), port=tm.PortSample(
            datapath_id=dp, port_no=no, tx_bytes=tx, tx_packets=tx // 1000,
            duration_s=dur)).SerializeToString()

    bad_dp = port(0xBAD, 2, 0, 1.0)
    await produce(kafka_bootstrap, T.SPECS[T.TELEMETRY_BASE].name(prefix), [
        (b"ams", port(0xF, 3, 0, 10.0)),                 # fra -> ams, baseline
        (b"ams", port(0xF, 3, 250_000_000, 20.0)),       # 200 Mbps over 10 s
        (b"ams", port(0xA, 1, 5, 10.0)),                 # host port: counted, not a link
        (b"ams", bad_dp),                                # no such datapath
    ])

    def fra_dir() -> Any:
        m = metrics(worker, "ams-fra")
        return None if m is None else {d.from_site: d for d in m.directions}.get("fra")
    await until(lambda: fra_dir() is not None and fra_dir().has_utilisation,
                "a utilisation for ams-fra", 40)
    d = fra_dir()
    assert d.utilisation_mbps == 200.0 and not d.has_latency and d.loss == 0.0
    letters = [alarms_pb2.DeadLetter.FromString(r.value) for r in await read_all(
        kafka_bootstrap, T.SPECS[T.DEAD_LETTERS_BASE].name(prefix), 1)]
    assert [(x.reason, x.payload) for x in letters] == [("unknown_reference", bad_dp)]
    assert worker._telemetry_fold.stats.ports_unmapped == 1  # type: ignore[attr-defined]


async def test_restart_resumes_state_without_duplicate_transitions(
        kafka_bootstrap: str, tandem_topics: str, tmp_path: Any) -> None:
    """A degraded link stays degraded across a worker restart (state resumed from the
    `link_metrics` changelog): more violating samples publish nothing new, recovery once."""
    settings = Settings(broker=kafka_bootstrap, topic_prefix=tandem_topics,
                        app_id=f"{tandem_topics}app", web_enabled=False,
                        data_dir=str(tmp_path / "w1"))
    topic = T.SPECS[T.TELEMETRY_BASE].name(tandem_topics)
    t0 = time.time() - 1000

    def samples(lats: list[float], start: int) -> list[tuple[bytes, bytes]]:
        out = []
        for i, lat in enumerate(lats, start):
            s = tm.TelemetrySample(meta=new_meta("test", at=t0 + i), link=tm.LinkSample(
                link_id="ams-fra", from_site="ams", utilisation_mbps=1, latency_ms=lat, loss=0))
            out.append((b"ams-fra", s.SerializeToString()))
        return out

    first = create_app(settings)
    telemetry_agent.install(first, params=FAST)
    await first.app.start()
    try:
        await setup_inventory(first, kafka_bootstrap)
        await produce(kafka_bootstrap, topic, samples([80.0] * 10, 0))
        await until(lambda: (m := metrics(first, "ams-fra")) is not None
                    and m.state == L.OPER_STATE_DEGRADED, "ams-fra DEGRADED", 40)
    finally:
        await first.app.stop()

    second = create_app(Settings(**{**settings.__dict__, "data_dir": str(tmp_path / "w2")}))
    telemetry_agent.install(second, params=FAST)
    await second.app.start()
    try:
        m = metrics(second, "ams-fra")  # recovered from the changelog before consuming
        assert m is not None and m.state == L.OPER_STATE_DEGRADED
        await produce(kafka_bootstrap, topic, samples([80.0] * 10 + [20.0] * 15, 10))
        await until(lambda: (m := metrics(second, "ams-fra")) is not None
                    and m.state == L.OPER_STATE_UP, "ams-fra UP", 40)
        await wait_committed(kafka_bootstrap, f"{settings.app_id}.telemetry", [topic], 40)
    finally:
        await second.app.stop()
    states = [L.LinkStateEvent.FromString(r.value) for r in await read_all_partitions(
        kafka_bootstrap, T.SPECS[T.LINK_STATE_BASE].name(tandem_topics))]
    assert [s.state for s in states] == [L.OPER_STATE_DEGRADED, L.OPER_STATE_UP]
