"""Clock agent: turns capacity changes announced in advance (satellite contact windows,
fades) into ticks on the decider log when their moment comes, so the decider reacts to them
like to any other input — and a replay sees them at the same place in the log."""

from __future__ import annotations

import logging
import time
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from tandem.decider import capacity_moments
from tandem.engine.topology import Topology
from tandem.events import derived_id, new_meta
from tandem.pbconvert import link_from_pb
from tandem.streams.agents.base import send_forward
from tandem.v1 import decider_pb2, inventory_pb2

log = logging.getLogger(__name__)
INTERVAL_S = 1.0


def install(tandem: Any) -> None:
    app = tandem.app
    inventory = tandem.tables["inventory"]
    last = {"t": time.time()}

    @app.timer(interval=INTERVAL_S, on_leader=True, name="tandem.capacity-clock")
    async def capacity_clock() -> None:
        now = time.time()
        links = {k[5:]: link_from_pb(inventory_pb2.Link.FromString(v))
                 for k, v in list(inventory.items()) if k.startswith("link/") and v}
        moments = capacity_moments(Topology({}, links), last["t"], now)
        last["t"] = now
        for at, reason in moments:
            ts = Timestamp()
            ts.FromNanoseconds(int(at * 1e9))
            # The id names the moment: a tick sent twice (leader change) is folded once.
            meta = new_meta("streams/clock", event_id=derived_id("tick", reason, repr(at)), at=at)
            await send_forward(tandem, decider_pb2.DeciderInput(
                meta=meta, tick=decider_pb2.ClockTick(at=ts, reason=reason)))
            log.info("clock: %s", reason)
