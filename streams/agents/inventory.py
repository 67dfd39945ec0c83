"""Inventory agent: folds site and link events into the `inventory` table and forwards them
to the decider log (capacity and topology changes can change decisions).

The table maps "site/<id>" and "link/<id>" to the element's latest protobuf bytes (a removal
deletes the key, and removing a site removes its links): the live topology every agent reads.
"""

from __future__ import annotations

import logging
from typing import Any

from tandem.events import derived_id, new_meta
from tandem.inventory import check_inventory, inventory_key, observation_alarm, site_key
from tandem.streams.compat import faust_table_writes as tables
from tandem.streams import topics as T
from tandem.streams.agents.base import (InputHandler, decider_input, ensure_site_topics, forward,
                                        global_table)
from tandem.streams.txloop import Out, Record
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


def install(tandem: Any) -> InputHandler[inventory_pb2.InventoryEvent]:
    """The inventory table, and the handler of the inventory topic (the caller runs it)."""
    app = tandem.app
    # Global: every worker reads the whole topology (telemetry and decisions need it on
    # whichever worker holds their partitions).
    table = global_table(app, "inventory")
    tandem.tables["inventory"] = table
    sites, links = SitesOf(table), LinksOf(table)
    alarms = T.SPECS[T.ALARMS_BASE].name(tandem.settings.topic_prefix)

    async def on_record(rec: Record, msg: inventory_pb2.InventoryEvent) -> list[Out]:
        which = msg.WhichOneof("change")
        if which == "observed":  # what LLDP saw: for the NOC, not for decisions
            return observe(table, msg, alarms)
        if which == "site":  # its command topics exist before any command
            await ensure_site_topics(tandem, msg.site.site_id)
        apply(table, msg)
        return [forward(tandem, decider_input("streams/inventory", msg, inventory=msg))]

    return InputHandler(tandem, inventory_pb2.InventoryEvent,
                        lambda m: check_inventory(m, sites, links), on_record, "inventory-fold",
                        writes_tables=True)


def observe(table: Any, msg: inventory_pb2.InventoryEvent, alarms_topic: str) -> list[Out]:
    key = inventory_key(msg)
    old = table.get(key)
    previous = inventory_pb2.LinkObservation.FromString(old) if old else None
    change = observation_alarm(msg.observed, previous)
    tables.put(table, key, msg.observed.SerializeToString())
    if change is None:
        return []
    cleared, text = change
    alarm = alarms_pb2.Alarm(
        meta=new_meta("streams/inventory", correlation_id=msg.meta.event_id,
                      event_id=derived_id("observation-alarm", msg.meta.event_id)),
        severity=alarms_pb2.SEVERITY_INFO if cleared else alarms_pb2.SEVERITY_MAJOR,
        raised_by="streams/inventory", text=text, site_id=msg.observed.observer_site,
        link_id=msg.observed.link_id, cleared=cleared)
    return [Out(alarms_topic, alarm.SerializeToString(), key=msg.observed.link_id.encode())]


def apply(table: Any, msg: inventory_pb2.InventoryEvent) -> None:
    key = inventory_key(msg)
    which = msg.WhichOneof("change")
    if which == "removed":
        tables.delete(table, key)
        if msg.removed.kind == inventory_pb2.ElementRemoved.KIND_SITE:
            for k in [k for k in table if k.startswith("link/")]:
                link = inventory_pb2.Link.FromString(table[k])
                if msg.removed.id in (link.site_a, link.site_b):
                    tables.delete(table, k)
        log.info("inventory: removed %s", key)
        return
    element = msg.site if which == "site" else msg.link
    tables.put(table, key, element.SerializeToString())
    log.debug("inventory: %s updated", key)
