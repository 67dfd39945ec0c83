"""The demo on the local broker: inventory events → Kafka → Faust fold → printed topology.

Publishes a small European federation (and one malformed record, to show dead-lettering),
runs the stream processors in-process until the inventory table holds every element, then
prints the topology read back from the table.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaProducer

from tandem.events import new_meta
from tandem.inventory import inventory_key
from tandem.services.kafka_admin import BrokerUnavailable, ensure_topics
from tandem.services.render import render_inventory
from tandem.streams import topics as T
from tandem.streams.settings import Settings
from tandem.v1 import common_pb2, inventory_pb2

log = logging.getLogger(__name__)

K = inventory_pb2


def demo_federation() -> list[inventory_pb2.InventoryEvent]:
    """Six sites in five jurisdictions joined by fibre, MPLS, a gateway LAN and a satellite."""
    sites = [
        ("ams", "Amsterdam", 52.37, 4.90, "NL", 512, 2048, ["vsphere", "kvm"], 0.031),
        ("fra", "Frankfurt", 50.11, 8.68, "DE", 768, 3072, ["vsphere"], 0.034),
        ("par", "Paris", 48.86, 2.35, "FR", 384, 1536, ["kvm"], 0.029),
        ("mil", "Milan", 45.46, 9.19, "IT", 256, 1024, ["vsphere", "kvm"], 0.027),
        ("zrh", "Zurich", 47.37, 8.54, "CH", 128, 512, ["vsphere"], 0.045),
        ("lon", "London", 51.51, -0.13, "GB", 640, 2560, ["vsphere", "kvm"], 0.038),
    ]
    links = [
        ("ams-fra", "ams", "fra", 10000, 6.1, K.LINK_KIND_FIBRE, ["NL", "DE"], 0.002),
        ("fra-par", "fra", "par", 5000, 7.9, K.LINK_KIND_MPLS, ["DE", "FR"], 0.004),
        ("par-lon", "par", "lon", 10000, 5.4, K.LINK_KIND_FIBRE, ["FR", "GB"], 0.002),
        ("lon-ams", "lon", "ams", 10000, 5.7, K.LINK_KIND_FIBRE, ["GB", "NL"], 0.002),
        ("fra-zrh", "fra", "zrh", 2000, 4.3, K.LINK_KIND_FIBRE, ["DE", "CH"], 0.003),
        ("zrh-mil", "zrh", "mil", 1000, 3.2, K.LINK_KIND_LAN_GATEWAY, ["CH", "IT"], 0.001),
        ("mil-par", "mil", "par", 200, 280.0, K.LINK_KIND_SATELLITE, ["IT", "FR"], 0.020),
    ]
    events: list[inventory_pb2.InventoryEvent] = []
    for sid, name, lat, lon, cc, vcpu, mem, hyp, cost in sites:
        site = K.Site(site_id=sid, name=name, jurisdiction=cc,
                      location=common_pb2.Location(latitude=lat, longitude=lon, city=name),
                      capacity=K.ComputeCapacity(vcpus=vcpu, memory_gib=mem, storage_gib=vcpu * 20),
                      hypervisors=hyp, cost_per_vcpu_hour=cost, state=K.SITE_STATE_ACTIVE)
        if cc != "CH" and cc != "GB":
            site.jurisdiction_groups.extend(["EU", "EEA"])
        events.append(K.InventoryEvent(meta=new_meta("demo/inventory"), site=site))
    for lid, a, b, cap, lat_ms, kind, cross, cost in links:
        link = K.Link(link_id=lid, site_a=a, site_b=b, capacity_ab_mbps=cap,
                      capacity_ba_mbps=cap, latency_ms=lat_ms, kind=kind, jurisdictions=cross,
                      cost_per_mbps=cost, admin_state=K.ADMIN_STATE_ENABLED)
        events.append(K.InventoryEvent(meta=new_meta("demo/inventory"), link=link))
    return events


async def publish(broker: str, topic: str, events: list[inventory_pb2.InventoryEvent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for ev in events:
            await producer.send(topic, key=inventory_key(ev).encode(), value=ev.SerializeToString())
        # A record an exporter got wrong: it must land on the dead-letter topic, not crash.
        await producer.send(topic, key=b"site/bad", value=b"\x08\x96\x01not-protobuf\xff")
        await producer.flush()
    finally:
        await producer.stop()


async def run_demo(settings: Settings, timeout: float = 60.0) -> int:
    from tandem.cli import UserError
    from tandem.streams.app import create_app

    for noisy in ("faust", "mode", "aiokafka"):  # the demo prints its own story
        logging.getLogger(noisy).setLevel(logging.WARNING)
    prefix = settings.topic_prefix
    try:
        await ensure_topics(settings.broker, T.core_topics(prefix))
    except BrokerUnavailable as exc:
        raise UserError(f"{exc} (start it with 'tandem infra up' or 'make kafka-up')") from None
    events = demo_federation()
    wanted = {inventory_key(ev) for ev in events}
    print(f"publishing {len(events)} inventory events (+1 malformed) to "
          f"{T.SPECS[T.INVENTORY_BASE].name(prefix)} on {settings.broker}")
    await publish(settings.broker, T.SPECS[T.INVENTORY_BASE].name(prefix), events)

    tandem = create_app(settings)
    table = tandem.tables["inventory"]
    started = time.monotonic()
    await tandem.app.start()
    try:
        while not wanted <= set(table.keys()):
            if time.monotonic() - started > timeout:
                missing = sorted(wanted - set(table.keys()))
                print(f"the fold did not complete within {timeout:.0f} s; missing: {missing}")
                return 1
            await asyncio.sleep(0.1)
        items = {k: table[k] for k in sorted(table.keys())}
    finally:
        await tandem.app.stop()
    print(f"\ntopology folded by Faust from Kafka in {time.monotonic() - started:.1f} s:\n")
    print(render_inventory(items))
    return 0
