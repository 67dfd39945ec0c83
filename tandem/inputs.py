"""The checks of one decider-log input against the decider's own topology (pure).

Why here and not in each input agent alone: anything can be written to the decider log
directly, so the decider re-checks every record with the same rules the input agents apply
(ranges, physical bounds, references to sites and links it knows) before folding it.
"""

from __future__ import annotations

from tandem.engine.topology import Topology
from tandem.inventory import check_inventory
from tandem.linkstate import check_link_state
from tandem.requests import check_request
from tandem.v1 import decider_pb2
from tandem.validation import INVALID, check_meta, check_ranges, require


def check_input(inp: decider_pb2.DeciderInput, topo: Topology, now: float) -> None:
    """Raises InvalidEvent naming the field when `inp` is not a valid input at `now`."""
    check_meta(inp, now)
    check_ranges(inp)
    which = inp.WhichOneof("input")
    require(which is not None, INVALID, "input: none of request, inventory, link_state, "
                                        "reoptimise, tick, execution_failed, "
                                        "execution_done is set")
    if which == "request":
        check_request(inp.request, topo.sites, now)
    elif which == "inventory":
        check_inventory(inp.inventory, topo.sites, topo.links, now)
    elif which == "link_state":
        check_link_state(inp.link_state, topo.links, now)
    elif which == "tick":
        require(inp.tick.HasField("at"), INVALID, "tick.at: missing")
        require(bool(inp.tick.reason), INVALID, "tick.reason: empty")
    elif which in ("execution_failed", "execution_done"):
        ev = getattr(inp, which)
        require(bool(ev.workload_id), INVALID, f"{which}.workload_id: empty")
        require(bool(ev.decision_id), INVALID, f"{which}.decision_id: empty")
    elif which == "reoptimise":
        t = inp.reoptimise.target_utilisation
        require(0.0 <= t <= 1.0, INVALID, f"reoptimise.target_utilisation = {t}: not in 0..1")
