"""Every workaround of aiokafka, Faust and mode behaviour, in one place, applied explicitly.

Each module here works around one third-party behaviour, is named after it, says which
upstream issue it is (or that none was found), and declares the library versions it was written
for (`WRITTEN_FOR`). `apply_all()` applies them all, once; every process that talks to Kafka
calls it at its start (`create_app`, the SDN unit, the exporter, the benchmarks through
`create_app`). `tests/unit/streams/test_compat.py` fails when an installed version differs
from what a workaround was written for, or when the private code it relies on changed shape:
then each workaround must be re-checked against the new version (and dropped if fixed).

| module | works around |
|---|---|
| `aiokafka_producer_topic_tracking` | a producer batch waiting forever for a leader of an untracked topic |
| `aiokafka_txn_concurrent_backoff` | 20 ms slept between back-to-back transactions (KAFKA-5477) |
| `kafka_topic_visibility` | a created topic served by the broker's metadata only later; Faust's declarations |
| `faust_table_writes` | writing a Faust table outside a Faust stream |
| `faust_standby_seek` | standby recovery seeking to an offset below -1 and crashing the worker |
| `mode_worker` | mode's worker: SIGUSR2 bound to pdb, the root logger left at DEBUG |
| `aiokafka_private` | reads of aiokafka's private state (no public API): diagnostics, a metadata refresh |
"""

from __future__ import annotations

import logging
from importlib import metadata

from tandem.streams.compat import (aiokafka_private, aiokafka_producer_topic_tracking,
                                   aiokafka_txn_concurrent_backoff, faust_standby_seek,
                                   faust_table_writes, kafka_topic_visibility, mode_worker)

log = logging.getLogger(__name__)

WORKAROUNDS = (aiokafka_producer_topic_tracking, aiokafka_txn_concurrent_backoff,
               kafka_topic_visibility, faust_table_writes, faust_standby_seek, mode_worker,
               aiokafka_private)
_applied = False


def version_mismatches() -> list[str]:
    """Workarounds whose library is installed in a version they were not written for."""
    out = []
    for mod in WORKAROUNDS:
        for dist, version in mod.WRITTEN_FOR.items():
            have = metadata.version(dist)
            if have != version:
                out.append(f"{mod.__name__.rsplit('.', 1)[-1]}: written for {dist} {version}, "
                           f"installed {have}")
    return out


def apply_all() -> None:
    """Apply every workaround (idempotent). A version it was not written for is logged: the
    workaround may be unneeded or wrong there (the test suite fails on it)."""
    global _applied
    if _applied:
        return
    for problem in version_mismatches():
        log.error("compat: %s: re-check this workaround", problem)
    for mod in WORKAROUNDS:
        apply = getattr(mod, "apply", None)
        if apply is not None:
            apply()
    _applied = True
