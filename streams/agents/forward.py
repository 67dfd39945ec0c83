"""Request and link-state agents: validate, record, forward to the decider log."""

from __future__ import annotations

from typing import Any

from tandem.linkstate import check_link_state
from tandem.requests import check_request
from tandem.streams import topics as T
from tandem.streams.agents.base import decider_input, forward, global_table, run_input_agent
from tandem.streams.agents.inventory import LinksOf, SitesOf
from tandem.v1 import link_state_pb2, workload_pb2


def install(tandem: Any) -> None:
    app = tandem.app
    inventory = tandem.tables["inventory"]
    # Written by whichever worker holds a link-state partition.
    link_state = global_table(app, "link_state", T.SPECS[T.LINK_STATE_BASE].partitions)
    tandem.tables["link_state"] = link_state
    sites, links = SitesOf(inventory), LinksOf(inventory)

    async def on_request(event: Any, msg: workload_pb2.RequestEvent) -> None:
        await forward(tandem, decider_input("streams/requests", msg, request=msg))

    async def on_link_state(event: Any, msg: link_state_pb2.LinkStateEvent) -> None:
        link_state[msg.link_id] = msg.SerializeToString()
        await forward(tandem, decider_input("streams/link-state", msg, link_state=msg))

    @app.agent(tandem.topic(T.REQUESTS_BASE), name="tandem.requests-in")
    async def requests_in(stream: Any) -> None:
        await run_input_agent(tandem, stream, workload_pb2.RequestEvent,
                              lambda m: check_request(m, sites), on_request, "requests-in")

    @app.agent(tandem.topic(T.LINK_STATE_BASE), name="tandem.link-state-in")
    async def link_state_in(stream: Any) -> None:
        await run_input_agent(tandem, stream, link_state_pb2.LinkStateEvent,
                              lambda m: check_link_state(m, links), on_link_state, "link-state-in")
