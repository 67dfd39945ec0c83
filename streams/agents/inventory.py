"""The `inventory` table: the live topology every worker reads (telemetry bands, the web view).

It maps "site/<id>" and "link/<id>" to the element's latest protobuf bytes (a removal deletes
the key, and removing a site removes its links), and "observed/..." to the latest LLDP
observation. The decider writes it (`tandem.streams.decider_service`) from the inventory events
it accepted, so the table shows exactly the decider's topology; an LLDP observation that
changes status raises an alarm.
"""

from __future__ import annotations

import logging
from typing import Any

from tandem.events import derived_id, new_meta
from tandem.inventory import inventory_key, observation_alarm, site_key
from tandem.streams.agents.base import global_table
from tandem.streams.compat import faust_table_writes as tables
from tandem.streams.txloop import Out
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


def install(tandem: Any) -> Any:
    """The inventory table (written by the decider, from the inventory events it accepts)."""
    # Global: every worker reads the whole topology (telemetry needs it on whichever worker
    # holds its partitions).
    table = global_table(tandem.app, "inventory")
    tandem.tables["inventory"] = table
    return table


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
