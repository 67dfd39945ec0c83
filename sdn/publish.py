"""Publish the emulated WAN's sites and links to the inventory topic (`tandem infra wan up
--broker`): sites with their switch's datapath id and the port of their local attachment (the
host port), links with the port they take on each end's switch. The core speaks links only;
the control units resolve the links of each crossing to these ports (`tandem.sdn.crossing`)
and compare them with what LLDP hears."""

from __future__ import annotations

import asyncio
from typing import Any


def attachment_ports(layout: dict[str, Any]) -> dict[str, int]:
    """site → the switch port of its local attachment, from the WAN state file's layout (one
    host port for every site today: `wanplan.HOST_PORT`)."""
    from tandem.sdn.paths import HOST_PORT

    port = int(layout.get("host_port", HOST_PORT))
    return {sid: int(s.get("attachment_port", port)) for sid, s in layout["sites"].items()}


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
    attach = attachment_ports(layout)
    for ev in events:
        if ev.WhichOneof("change") == "site" and ev.site.site_id in attach:
            ev.site.attachment_port = attach[ev.site.site_id]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for ev in events:
            await producer.send(topic, ev.SerializeToString(), key=inventory_key(ev).encode())
        await producer.flush()
    finally:
        await producer.stop()
    return len(events)
