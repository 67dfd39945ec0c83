"""Request and link-state handlers: validate, record, forward to the decider log.

The link-state handler also writes the NOC's JSON mirror of each event that decodes (valid or
not: the mirror shows what was published), in the same transaction: one reader of the topic,
so one dead letter per bad record.
"""

from __future__ import annotations

from typing import Any

from tandem.linkstate import check_link_state
from tandem.requests import check_request
from tandem.streams.compat import faust_table_writes as tables
from tandem.streams import topics as T
from tandem.streams.agents.base import InputHandler, decider_input, forward, global_table
from tandem.streams.agents.inventory import LinksOf, SitesOf
from tandem.streams.agents.noc_mirror import to_json
from tandem.streams.txloop import Out, Record
from tandem.v1 import link_state_pb2, workload_pb2


def install(tandem: Any) -> tuple[InputHandler[workload_pb2.RequestEvent],
                                  InputHandler[link_state_pb2.LinkStateEvent]]:
    app = tandem.app
    inventory = tandem.tables["inventory"]
    # Written by whichever worker holds a link-state partition.
    link_state = global_table(app, "link_state", T.SPECS[T.LINK_STATE_BASE].partitions)
    tandem.tables["link_state"] = link_state
    sites, links = SitesOf(inventory), LinksOf(inventory)
    mirror = T.SPECS[T.NOC_LINK_STATE_JSON_BASE].name(tandem.settings.topic_prefix)

    async def on_request(rec: Record, msg: workload_pb2.RequestEvent) -> list[Out]:
        return [forward(tandem, decider_input("streams/requests", msg, request=msg))]

    async def on_link_state(rec: Record, msg: link_state_pb2.LinkStateEvent) -> list[Out]:
        tables.put(link_state, msg.link_id, msg.SerializeToString())
        return [forward(tandem, decider_input("streams/link-state", msg, link_state=msg))]

    requests = InputHandler(tandem, workload_pb2.RequestEvent, lambda m: check_request(m, sites),
                            on_request, "requests-in")
    link_states = InputHandler(tandem, link_state_pb2.LinkStateEvent,
                               lambda m: check_link_state(m, links), on_link_state,
                               "link-state-in", writes_tables=True,
                               decoded=lambda rec, msg: [Out(mirror, to_json(msg), key=rec.key)])
    return requests, link_states
