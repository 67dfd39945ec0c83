"""Inventory agent: folds site and link events into the `inventory` table and forwards them
to the decider log (capacity and topology changes can change decisions).

The table maps "site/<id>" and "link/<id>" to the element's latest protobuf bytes (a removal
deletes the key, and removing a site removes its links): the live topology every agent reads.
"""

from __future__ import annotations

import logging
from typing import Any

from tandem.events import new_meta
from tandem.inventory import check_inventory, inventory_key, observation_alarm, site_key
from tandem.streams import topics as T
from tandem.streams.agents.base import (decider_input, ensure_site_topics, forward,
                                        global_table, run_input_agent)
from tandem.v1 import alarms_pb2, inventory_pb2

log = logging.getLogger(__name__)


class SitesOf:
    """`site_id in known` over the inventory table, for the pure reference checks."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def __contains__(self, site_id: object) -> bool:
        return site_key(str(site_id)) in self.table


class LinksOf:
    def __init__(self, table: Any) -> None:
        self.table = table

    def __contains__(self, link_id: object) -> bool:
        return f"link/{link_id}" in self.table


def install(tandem: Any) -> None:
    app = tandem.app
    # Global: every worker reads the whole topology (telemetry and decisions need it on
    # whichever worker holds their partitions).
    table = global_table(app, "inventory")
    tandem.tables["inventory"] = table
    sites = SitesOf(table)

    async def handle(event: Any, msg: inventory_pb2.InventoryEvent) -> None:
        which = msg.WhichOneof("change")
        if which == "observed":  # what LLDP saw: for the NOC, not for decisions
            await observe(tandem, table, msg)
            return
        if which == "site":  # its command topics exist before any command
            await ensure_site_topics(tandem, msg.site.site_id)
        apply(table, msg)
        await forward(tandem, decider_input("streams/inventory", msg, inventory=msg))

    @app.agent(tandem.topic(T.INVENTORY_BASE), name="tandem.inventory-fold")
    async def fold_inventory(stream: Any) -> None:
        await run_input_agent(tandem, stream, inventory_pb2.InventoryEvent,
                              lambda m: check_inventory(m, sites), handle, "inventory-fold")


async def observe(tandem: Any, table: Any, msg: inventory_pb2.InventoryEvent) -> None:
    key = inventory_key(msg)
    old = table.get(key)
    previous = inventory_pb2.LinkObservation.FromString(old) if old else None
    table[key] = msg.observed.SerializeToString()
    change = observation_alarm(msg.observed, previous)
    if change is None:
        return
    cleared, text = change
    alarm = alarms_pb2.Alarm(
        meta=new_meta("streams/inventory", correlation_id=msg.meta.event_id),
        severity=alarms_pb2.SEVERITY_INFO if cleared else alarms_pb2.SEVERITY_MAJOR,
        raised_by="streams/inventory", text=text, site_id=msg.observed.observer_site,
        link_id=msg.observed.link_id, cleared=cleared)
    await tandem.topic(T.ALARMS_BASE).send(key=msg.observed.link_id.encode(),
                                           value=alarm.SerializeToString())


def apply(table: Any, msg: inventory_pb2.InventoryEvent) -> None:
    key = inventory_key(msg)
    which = msg.WhichOneof("change")
    if which == "removed":
        table.pop(key, None)
        if msg.removed.kind == inventory_pb2.ElementRemoved.KIND_SITE:
            for k in [k for k in table if k.startswith("link/")]:
                link = inventory_pb2.Link.FromString(table[k])
                if msg.removed.id in (link.site_a, link.site_b):
                    table.pop(k, None)
        log.info("inventory: removed %s", key)
        return
    element = msg.site if which == "site" else msg.link
    table[key] = element.SerializeToString()
    log.debug("inventory: %s updated", key)
