"""Inventory agent: folds site and link events into the `inventory` table.

The table maps "site/<id>" and "link/<id>" to the element's latest protobuf bytes (a removal
deletes the key), which is the live topology every other agent reads.
"""

from __future__ import annotations

import logging
from typing import Any

from tandem.inventory import check_inventory, inventory_key, site_key
from tandem.streams import topics as T
from tandem.streams.deadletter import dead_letter
from tandem.v1 import inventory_pb2
from tandem.validation import PROCESSING_ERROR, InvalidEvent, decode

log = logging.getLogger(__name__)


class _SitesOf:
    """`site_id in known` over the table, for the pure reference check."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def __contains__(self, site_id: object) -> bool:
        return site_key(str(site_id)) in self.table


def install(tandem: Any) -> None:
    app = tandem.app
    # Global: every worker reads the whole topology (telemetry and decisions need it on
    # whichever worker holds their partitions).
    table = app.GlobalTable(
        "inventory", default=None, key_type=str, value_type=bytes, partitions=1,
    )
    tandem.tables["inventory"] = table
    source = tandem.topic(T.INVENTORY_BASE)
    dead = tandem.topic(T.DEAD_LETTERS_BASE)

    @app.agent(source, name="tandem.inventory-fold")
    async def fold_inventory(stream: Any) -> None:
        async for event in stream.events():
            try:
                msg = decode(inventory_pb2.InventoryEvent, event.value)
                check_inventory(msg, _SitesOf(table))
                apply(table, msg)
            except InvalidEvent as bad:
                await dead_letter(dead, event, bad.reason, bad.detail, "inventory-fold")
            except Exception as exc:  # a bug must not lose the record: keep it, say why
                log.exception("inventory-fold failed on a record")
                await dead_letter(dead, event, PROCESSING_ERROR, repr(exc), "inventory-fold")


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
