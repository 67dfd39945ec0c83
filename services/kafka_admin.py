"""Topic administration: create Tandem's topics idempotently with their partitions and config.

The topic contracts live in `tandem.streams.topics`; this module only applies them to a broker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from tandem.streams.topics import TopicSpec

log = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    """No broker answers at the given address."""


async def ensure_topics(
    bootstrap: str, specs: Iterable[tuple[str, TopicSpec]], replication: int = 1
) -> dict[str, str]:
    """Create the missing topics; return {name: "created" | "exists"}.

    Existing topics are left as they are (their partition count is checked and a mismatch
    is logged: partitions can only grow, and growing them would move keys between partitions).
    """
    wanted = dict(specs)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="tandem-admin",
                                request_timeout_ms=15000)
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        raise BrokerUnavailable(f"no Kafka broker answers at {bootstrap}: {exc}") from exc
    result: dict[str, str] = {}
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in sorted(wanted) if n not in existing]
        if missing:
            new = [NewTopic(name=n, num_partitions=wanted[n].partitions,
                            replication_factor=replication, topic_configs=dict(wanted[n].config))
                   for n in missing]
            resp = await admin.create_topics(new)
            for name, code, message in _errors(resp):
                if code == TopicAlreadyExistsError.errno:
                    result[name] = "exists"  # created concurrently by someone else
                elif code != 0:
                    raise RuntimeError(f"creating topic {name} failed: error {code} {message}")
                else:
                    result[name] = "created"
                    log.info("created topic %s (%d partitions)", name, wanted[name].partitions)
        for name in sorted(wanted):
            result.setdefault(name, "exists")
        present = [n for n in sorted(wanted) if n in existing]
        if present:
            for desc in await admin.describe_topics(present):
                name = desc["topic"]
                have = len(desc["partitions"])
                if have != wanted[name].partitions:
                    log.warning("topic %s has %d partitions, the spec says %d",
                                name, have, wanted[name].partitions)
    finally:
        await admin.close()
    return result


def _errors(resp: object) -> list[tuple[str, int, str]]:
    out = []
    for item in getattr(resp, "topic_errors", []):
        name, code = item[0], item[1]
        message = item[2] if len(item) > 2 else ""
        out.append((name, code, message or ""))
    return out


async def delete_topics(bootstrap: str, names: Iterable[str]) -> None:
    """Delete topics (used by tests to clean up their prefixed topics)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="tandem-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()
