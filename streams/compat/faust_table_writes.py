"""Writing Faust global tables from Tandem's own processing loops (a faust-streaming 0.15 limit).

Faust sends a table's changelog record from `table[key] = value` with the partition of the
stream event being processed; outside a Faust stream there is none, and with
`use_partitioner=True` it asks the producer's metadata for the changelog topic's partitions,
which aiokafka may not hold (`TypeError: 'NoneType' object is not iterable` in
`AIOKafkaProducer._partition`; it killed the worker on the first telemetry flush after a
decision, issue 9). Tandem's tables are written only from its own loops
(`tandem.streams.txloop`), never from a Faust stream, so every write goes through here: the
local store is updated and the changelog record is sent with an explicit partition.

`flush(app)` waits until those changelog records are on the broker: a loop calls it before
committing the offsets that cover them, so that no committed input is missing from a table.
"""

from __future__ import annotations

from typing import Any

UPSTREAM = ("not reported to faust-streaming; related: faust-streaming PR 402 (partitioner of "
            "table writes)")
WRITTEN_FOR = {"faust-streaming": "0.15.3"}


def partition_of(table: Any, key: str) -> int:
    """The changelog partition of `key`: 0 for one-partition tables, else a stable hash (the
    same on every worker, unlike Python's salted `hash`)."""
    n = int(table.partitions or 1)
    if n <= 1:
        return 0
    import zlib

    return zlib.crc32(key.encode()) % n


def put(table: Any, key: str, value: bytes) -> None:
    table.data[key] = value
    table.send_changelog(partition_of(table, key), key, value)


def delete(table: Any, key: str) -> None:
    table.data.pop(key, None)
    table.send_changelog(partition_of(table, key), key, None, value_serializer="raw")


async def flush(app: Any) -> None:
    await app.producer.flush()


def check() -> list[str]:
    """What this workaround relies on, if it is gone."""
    import inspect

    from faust.tables.base import Collection

    out = []
    if list(inspect.signature(Collection.send_changelog).parameters)[:4] != [
            "self", "partition", "key", "value"]:
        out.append("Collection.send_changelog(partition, key, value, ...)")
    if not isinstance(inspect.getattr_static(Collection, "data"), property):
        out.append("Collection.data (the store)")
    return out
