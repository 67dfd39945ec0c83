"""Maintenance through the API: `SetLinkAdminState` takes a link out of service (or back).

Why an inventory change: the engine already reacts to a topology change by moving what no
longer fits (make-before-break reroutes, evacuations); a link whose admin state is DISABLED
has no usable capacity, so publishing the link with that state on `tandem.inventory` is the
whole mechanism — the decider folds it, reacts, and its decisions go to the executor as any
other. The event is the link as the server's fold knows it, with only the admin state changed.

Idempotency: the event id is derived from the idempotency key, and the decider folds an input
id once; a repeat whose input is already folded is not sent again (a re-sent event would carry
a new time and be refused as an id reused). What it gave is kept by the view for the inputs
this server sent (`DeciderView.applied`); the same key for another change is ALREADY_EXISTS.

DrainSite is not offered: the engine treats a DRAINING site as closed to new placements but
does not move what runs there (only a DOWN site is evacuated), so "workloads move before the
site goes" needs the engine's reaction to learn draining first.

Caveat: tandem.inventory is the inventory's topic; an inventory system that republishes the
link later sets its admin state back to what it says.
"""

from __future__ import annotations

import time

from tandem.events import derived_id, new_meta
from tandem.pbconvert import link_to_pb
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
        deadline = time.monotonic() + (DEFAULT_WAIT_S if timeout is None else timeout)
        await self.view.wait_serving(min(STARTUP_WAIT_S, deadline - time.monotonic()))
        event_id = derived_id("api-link-admin", call.idempotency_key)
        iid = input_id(event_id)
        if iid in self.view.decider.inputs_folded:
            return self._answer(iid, call)
        link = self.view.decider.topology.links.get(call.link_id)
        if link is None:
            await self.view.sync(KAFKA_TIMEOUT_S)
            link = self.view.decider.topology.links.get(call.link_id)
        if link is None:
            raise NotFound(f"no link {call.link_id!r}")
        pb = link_to_pb(link)
        pb.admin_state = call.admin_state
        event = inventory_pb2.InventoryEvent(
            meta=new_meta(SOURCE, correlation_id=event_id, event_id=event_id), link=pb)
        self.view.expected.add(iid)
        await self.orders.send_record(self.topic, inventory_key(event), event.SerializeToString(),
                                      deadline)
        while iid not in self.view.decider.inputs_folded:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeadlineExceeded(f"link change sent (event {event_id}) but not folded "
                                       "within the deadline: repeat with the same key")
            await self.view._next(time.monotonic() + min(left, 0.1))
        return self._answer(iid, call)

    def _answer(self, iid: str, call: api_pb2.SetLinkAdminStateRequest
                ) -> tuple[list[decision_pb2.Decision], api_pb2.LinkView]:
        got = self.view.applied.get(iid)
        decisions: list[decision_pb2.Decision] = []
        if got is not None:
            inp, decisions = got
            if (inp.inventory.link.link_id, inp.inventory.link.admin_state) != (
                    call.link_id, call.admin_state):
                raise AlreadyExists("idempotency key used before for another link change "
                                    f"({inp.inventory.link.link_id} → "
                                    f"{inventory_pb2.AdminState.Name(inp.inventory.link.admin_state)})")
        _sites, links = convert.topology_view(self.view.decider.topology,
                                              self.view.decider.state)
        view = next((lv for lv in links if lv.link.link_id == call.link_id), None)
        if view is None:
            raise NotFound(f"no link {call.link_id!r}")
        return decisions, view


