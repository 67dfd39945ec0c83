"""Maintenance through the API: `SetLinkAdminState` takes a link out of service (or back),
`DrainSite` drains a site (or puts it back in service).

Why an inventory change: the engine already reacts to a topology change by moving what no
longer fits (make-before-break reroutes, evacuations); a link whose admin state is DISABLED
has no usable capacity, and a site that turns DRAINING has its workloads' groups live-migrated
elsewhere (or kept, DEGRADED, when nothing else fits), so publishing the element with that
state on `tandem.inventory` is the whole mechanism — the decider folds it, reacts, and its
decisions go to the executor as any other. The event is the element as the server's fold
knows it, with only its state changed.

Idempotency: the event id is derived from the idempotency key, and the decider folds an input
id once; a repeat whose input is already folded is not sent again (a re-sent event would carry
a new time and be refused as an id reused). What it gave is kept by the view for the inputs
this server sent (`DeciderView.applied`); the same key for another change is ALREADY_EXISTS.

Caveat: tandem.inventory is the inventory's topic; an inventory system that republishes the
element later sets its state back to what it says.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tandem.events import derived_id, new_meta
from tandem.pbconvert import link_to_pb, site_to_pb
from tandem.inventory import inventory_key
from tandem.streams import topics as T
from tandem.v1 import api_pb2, decision_pb2, inventory_pb2

from tandem.services.api import convert
from tandem.services.api.errors import AlreadyExists, BadRequest, DeadlineExceeded, NotFound
from tandem.services.api.orders import DEFAULT_WAIT_S, STARTUP_WAIT_S, Orders
from tandem.services.api.view import KAFKA_TIMEOUT_S, SOURCE, DeciderView

_STATES = (inventory_pb2.ADMIN_STATE_ENABLED, inventory_pb2.ADMIN_STATE_DISABLED)


def input_id(event_id: str) -> str:
    """The decider log id of an inventory event (as `Decider.admit` wraps it)."""
    return derived_id("decider-input", event_id)


class Maintenance:
    def __init__(self, view: DeciderView, orders: Orders, prefix: str = "") -> None:
        self.view, self.orders = view, orders
        self.topic = T.SPECS[T.INVENTORY_BASE].name(prefix)

    async def set_link(self, call: api_pb2.SetLinkAdminStateRequest, timeout: float | None
                       ) -> tuple[list[decision_pb2.Decision], api_pb2.LinkView]:
        bad = convert.check_key(call.idempotency_key)
        if not call.link_id:
            bad.append(("link_id", "required"))
        if call.admin_state not in _STATES:
            bad.append(("admin_state", "ADMIN_STATE_ENABLED or ADMIN_STATE_DISABLED"))
        if bad:
            raise BadRequest(bad)

        def event() -> inventory_pb2.InventoryEvent | None:
            link = self.view.decider.topology.links.get(call.link_id)
            if link is None:
                return None
            pb = link_to_pb(link)
            pb.admin_state = call.admin_state
            return inventory_pb2.InventoryEvent(link=pb)

        def same(ev: inventory_pb2.InventoryEvent) -> bool:
            return (ev.link.link_id, ev.link.admin_state) == (call.link_id, call.admin_state)

        decisions = await self._apply("api-link-admin", call.idempotency_key,
                                      f"link {call.link_id!r}", event, same, timeout)
        _sites, links = convert.topology_view(self.view.decider.topology,
                                              self.view.decider.state)
        view = next((lv for lv in links if lv.link.link_id == call.link_id), None)
        if view is None:
            raise NotFound(f"no link {call.link_id!r}")
        return decisions, view

    async def drain_site(self, call: api_pb2.DrainSiteRequest, timeout: float | None
                         ) -> tuple[list[decision_pb2.Decision], api_pb2.SiteView]:
        bad = convert.check_key(call.idempotency_key)
        if not call.site_id:
            bad.append(("site_id", "required"))
        if bad:
            raise BadRequest(bad)
        state = (inventory_pb2.SITE_STATE_ACTIVE if call.resume
                 else inventory_pb2.SITE_STATE_DRAINING)

        def event() -> inventory_pb2.InventoryEvent | None:
            site = self.view.decider.topology.sites.get(call.site_id)
            if site is None:
                return None
            pb = site_to_pb(site)
            pb.state = state
            return inventory_pb2.InventoryEvent(site=pb)

        def same(ev: inventory_pb2.InventoryEvent) -> bool:
            return (ev.site.site_id, ev.site.state) == (call.site_id, state)

        decisions = await self._apply("api-site-drain", call.idempotency_key,
                                      f"site {call.site_id!r}", event, same, timeout)
        sites, _links = convert.topology_view(self.view.decider.topology,
                                              self.view.decider.state)
        view = next((sv for sv in sites if sv.site.site_id == call.site_id), None)
        if view is None:
            raise NotFound(f"no site {call.site_id!r}")
        return decisions, view

    async def _apply(self, kind: str, key: str, what: str,
                     event: Callable[[], inventory_pb2.InventoryEvent | None],
                     same: Callable[[inventory_pb2.InventoryEvent], bool],
                     timeout: float | None) -> list[decision_pb2.Decision]:
        """Publish the element `event()` builds (None: no such element) under an id derived
        from `key`, once; wait until folded; the reaction's decisions."""
        deadline = time.monotonic() + (DEFAULT_WAIT_S if timeout is None else timeout)
        await self.view.wait_serving(min(STARTUP_WAIT_S, deadline - time.monotonic()))
        event_id = derived_id(kind, key)
        iid = input_id(event_id)
        if iid not in self.view.decider.inputs_folded:
            ev = event()
            if ev is None:
                await self.view.sync(KAFKA_TIMEOUT_S)
                ev = event()
            if ev is None:
                raise NotFound(f"no {what}")
            ev.meta.CopyFrom(new_meta(SOURCE, correlation_id=event_id, event_id=event_id))
            self.view.expected.add(iid)
            await self.orders.send_record(self.topic, inventory_key(ev), ev.SerializeToString(),
                                          deadline)
            while iid not in self.view.decider.inputs_folded:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeadlineExceeded(f"{what} change sent (event {event_id}) but not "
                                           "folded within the deadline: repeat with the same key")
                await self.view._next(time.monotonic() + min(left, 0.1))
        got = self.view.applied.get(iid)
        if got is None:
            return []  # folded before this server started: what it gave is not known here
        inp, decisions = got
        if not same(inp.inventory):
            raise AlreadyExists(f"idempotency key used before for another change ({kind})")
        return decisions
