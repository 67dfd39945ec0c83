"""Reads of aiokafka's private state, for which it has no public API.

Not patches: diagnostics and one metadata refresh. Kept here, pinned to the version they were
written for and checked by `tests/unit/streams/test_compat.py`, because private names change
without notice:

- `force_metadata_update(client_owner)`: refresh a consumer's or admin client's metadata now
  (a topic created a moment ago; aiokafka's own refresh may be five minutes away);
- `admin_client(admin)`: the `AIOKafkaClient` inside an `AIOKafkaAdminClient`, to ask for the
  metadata of a few topics without auto-creating them (`kafka_topic_visibility`);
- `consumer_group(consumer)`: the consumer's group state and any error aiokafka holds for its
  user (the health page and the watchdog; see `tandem.streams.web`);
- `producer_queues()` / `consumer_states()`: what every producer and consumer of the process
  holds, for `kill -USR2` (best effort: a diagnostic never fails the worker).
"""

from __future__ import annotations

import gc
from typing import Any

UPSTREAM = "no public API in aiokafka 0.14 for these reads"
WRITTEN_FOR = {"aiokafka": "0.14.0"}


async def force_metadata_update(client_owner: Any) -> None:
    await client_owner._client.force_metadata_update()  # noqa: SLF001


def admin_client(admin: Any) -> Any:
    return admin._client  # noqa: SLF001


def consumer_group(consumer: Any) -> dict[str, Any]:
    """State, assigned partitions, generation and held error of one aiokafka consumer.

    `error` is an error aiokafka holds for the consumer's user; Faust collects such errors only
    while fetching, after its first assignment: while one is held at start-up the group never
    forms and the worker waits forever, silently."""
    coordinator = consumer._coordinator  # noqa: SLF001
    assigned = len(consumer.assignment())
    error = getattr(coordinator, "_pending_exception", None)
    return {
        "state": "error_pending" if error is not None else ("assigned" if assigned else "waiting"),
        "assigned_partitions": assigned,
        "generation": getattr(coordinator, "generation", None),
        "error": None if error is None else repr(error),
    }


def faust_consumer(app: Any) -> Any:
    """The aiokafka consumer inside Faust's consumer thread."""
    return app.consumer._thread._consumer  # noqa: SLF001

def producer_queues() -> list[str]:
    """What each Kafka producer still holds, with the partition leaders it knows (aiokafka's
    private state: best effort, a diagnostic must not fail the worker)."""
    lines: list[str] = []
    try:
        from aiokafka import AIOKafkaProducer

        for prod in [o for o in gc.get_objects() if isinstance(o, AIOKafkaProducer)]:
            acc, sender, client = prod._message_accumulator, prod._sender, prod.client  # noqa: SLF001
            waiting = [tp for tp, q in acc._batches.items() if q]  # noqa: SLF001
            lines.append(
                f"--- producer {id(prod):x}: {len(waiting)} partition(s) with batches waiting, "
                f"in flight to nodes {getattr(sender, '_in_flight', '?')}, "
                f"{len(acc._pending_batches)} batch(es) sent and unanswered")  # noqa: SLF001
            for tp in waiting:
                lines.append(
                    f"    {tp.topic}[{tp.partition}]: {len(acc._batches[tp])} batch(es), "  # noqa: SLF001
                    f"leader {client.cluster.leader_for_partition(tp)}, "
                    f"topic tracked {tp.topic in client._topics}, "  # noqa: SLF001
                    f"metadata update pending {client._md_update_fut is not None}")  # noqa: SLF001
    except Exception as exc:
        lines.append(f"--- producer state unavailable: {exc!r}")
    return lines


def consumer_states() -> list[str]:
    """What each Kafka consumer subscribes to, holds, and knows of the cluster (aiokafka's
    private state: best effort)."""
    lines: list[str] = []
    try:
        from aiokafka import AIOKafkaConsumer

        for cons in [o for o in gc.get_objects() if isinstance(o, AIOKafkaConsumer)]:
            sub, coord, client = cons._subscription, cons._coordinator, cons._client  # noqa: SLF001
            topics = sorted(sub.subscription.topics) if sub.subscription else []
            known = set(client.cluster.topics())
            group = consumer_group(cons)
            lines.append(
                f"--- consumer {id(cons):x} group {getattr(cons, '_group_id', None)}: "
                f"{len(topics)} topic(s) subscribed, "
                f"{len([t for t in topics if t not in known])} not in its metadata, "
                f"assigned {group['assigned_partitions']} partition(s), "
                f"coordinator {getattr(coord, 'coordinator_id', None)}, "
                f"rejoin needed {coord.need_rejoin(sub.subscription) if sub.subscription else '?'}, "
                f"member {getattr(coord, 'member_id', None)!r}, "
                f"generation {group['generation']}, error held for the user {group['error']}")
    except Exception as exc:
        lines.append(f"--- consumer state unavailable: {exc!r}")
    return lines


def check() -> list[str]:
    """The private names these reads rely on, if gone."""
    import inspect

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.consumer.group_coordinator import GroupCoordinator
    from aiokafka.producer.message_accumulator import MessageAccumulator

    out = []
    names = {
        AIOKafkaConsumer: ("_client", "_coordinator", "_subscription"),
        AIOKafkaProducer: ("_message_accumulator", "_sender"),
        AIOKafkaAdminClient: ("_client",),
        MessageAccumulator: ("_batches", "_pending_batches"),
        GroupCoordinator: ("_pending_exception", "generation"),
    }
    for cls, attrs in names.items():
        src = inspect.getsource(cls)
        out += [f"{cls.__name__}.{a}" for a in attrs if f"self.{a}" not in src]
    return out
