"""Faust's standby recovery can seek a changelog to an offset below -1, which kills the worker.

With two or more workers, Faust keeps a standby copy of each table partition on another worker
(`table_standby_replicas`, default 1). When a rebalance hands a worker standby partitions, its
Recovery seeks them to offsets derived from the changelog's highwater; `_seek_offsets` maps
only -1 to 0 (its comment: "FIXME Remove check when fixed offset-1 discrepancy"), so an offset
of -2 reaches aiokafka's `seek`, which raises `ValueError('Offset must be a positive integer')`;
Recovery crashes and takes the worker down. Seen once in 20 rebalances of `tandem bench
failover` (30 Nov 2026): "Starting standby partitions... Crashed reason=ValueError(...)".

The workaround: no standby replicas. Tandem's tables are small and a partition's new owner
rebuilds them from their changelogs; the decider keeps its state in its own snapshots, not in
Faust tables, so a takeover never waits for a standby.
"""

from __future__ import annotations

UPSTREAM = "none found; faust/tables/recovery.py Recovery._seek_offsets FIXME"
WRITTEN_FOR = {"faust-streaming": "0.15.3"}
APP_SETTINGS = {"table_standby_replicas": 0}


def check() -> list[str]:
    """What this workaround is about, if the code changed (then re-check it)."""
    import inspect

    from faust.tables.recovery import Recovery

    src = inspect.getsource(Recovery._seek_offsets)
    return [] if "offset == -1" in src else ["Recovery._seek_offsets changed: re-check"]
