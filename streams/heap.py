"""Long-lived state out of Python's full garbage collections: `settle_heap`.

Why: a worker holding the decider, and the API server folding the decider log, each keep
hundreds of thousands of long-lived objects (the decider's state with 1,000 workloads on GÉANT,
the modules, the Kafka clients). CPython's full (generation 2) collection walks every tracked
object; measured during `tandem bench api` at 10 calls/s: 150-200 ms pauses of the event loop,
about one per 10-20 s in each process, each one a stall of every call in flight (the worst
PlaceAndConnect calls). `gc.freeze()` moves what exists into a permanent generation that
collections no longer walk; objects allocated later are collected as usual. Collecting once
first (at a moment that is slow anyway: start-up, a rebuild) leaves no garbage frozen.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def settle_heap(what: str) -> None:
    """Collect everything once, then freeze what is left (see the module). Unfreezing first
    lets a later call (another rebuild) reclaim cycles among what an earlier one froze."""
    started = time.monotonic()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    log.info("%s: %d long-lived objects frozen out of garbage collection (%.0f ms)", what,
             gc.get_freeze_count(), (time.monotonic() - started) * 1000)
