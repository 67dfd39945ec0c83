"""Publish the emulated WAN's sites and links (with datapath ids and switch ports) to the
inventory topic, so the engine and the stream processor know which ports intents must name
and the control units know which link each port carries (`tandem infra wan up --broker`)."""

from __future__ import annotations

import asyncio
from typing import Any


def publish_inventory(bootstrap: str, topology: Any, layout: dict[str, Any],
                      prefix: str | None = None) -> int:
    return asyncio.run(_publish(bootstrap, topology, layout, prefix))


async def _publish(bootstrap: str, topology: Any, layout: dict[str, Any],
                   prefix: str | None) -> int:
    from aiokafka import AIOKafkaProducer

    from tandem.inventory import inventory_events, inventory_key
    from tandem.services.kafka_admin import ensure_topics
    from tandem.streams import topics as T

    spec = T.SPECS[T.INVENTORY_BASE]
    topic = spec.name(prefix)
    await ensure_topics(bootstrap, [(topic, spec)])
    ports = {lid: (int(l["port_a"]), int(l["port_b"])) for lid, l in layout["links"].items()}
    dpids = {sid: int(s["dpid"]) for sid, s in layout["sites"].items()}
    events = inventory_events(topology, "infra/wan", ports=ports, dpids=dpids)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for ev in events:
            await producer.send(topic, ev.SerializeToString(), key=inventory_key(ev).encode())
        await producer.flush()
    finally:
        await producer.stop()
    return len(events)
