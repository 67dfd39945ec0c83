"""Topic administration: create Tandem's topics idempotently with their partitions and config.

The topic contracts live in `tandem.streams.topics`; this module only applies them to a broker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from tandem.streams.compat import aiokafka_private
from tandem.streams.compat.kafka_topic_visibility import wait_until_gone, wait_until_visible
from tandem.streams.topics import TopicSpec

log = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    """No broker answers at the given address."""


async def ensure_topics(
    bootstrap: str, specs: Iterable[tuple[str, TopicSpec]], replication: int = 1,
    visible_timeout: float | None = 30.0,
) -> dict[str, str]:
    """Create the missing topics; return {name: "created" | "exists"} once the broker's
    metadata shows every one of them with a leader for each partition (`visible_timeout`
    None: return without waiting, for topics only produced to here).

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
        # Created is not yet usable: a consumer subscribing now could be told "unknown topic"
        # and a Faust worker would then never form its group (tandem.streams.topic_readiness).
        if visible_timeout is not None:
            await wait_until_visible(aiokafka_private.admin_client(admin), wanted,
                                     timeout=visible_timeout)
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
    """Delete topics; return once the broker's metadata no longer serves them."""
    wanted = set(names)
    await _delete(bootstrap, lambda existing: [t for t in existing if t in wanted])


async def delete_topics_with_prefix(bootstrap: str, prefix: str) -> list[str]:
    """Delete every topic whose name starts with `prefix` (a test's or benchmark's run,
    including the topics its workers created on the way: Faust's changelogs, site command
    topics). Returns the names deleted.

    Leaving them grows the broker by thousands of topics over many runs; metadata then
    slows down, and after a restart new topics took seconds to become visible."""
    if not prefix or not prefix.endswith((".", "-")):
        raise ValueError(f"refusing to delete by prefix {prefix!r}: it must end in '.' or '-'")
    return await _delete(bootstrap, lambda existing: [t for t in existing if t.startswith(prefix)])


async def _delete(bootstrap: str, select: Callable[[list[str]], list[str]]) -> list[str]:
    """Delete the existing topics `select` picks; return them once they are gone."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="tandem-admin")
    await admin.start()
    try:
        doomed = sorted(select(await admin.list_topics()))
        if doomed:
            await admin.delete_topics(doomed)
            await wait_until_gone(aiokafka_private.admin_client(admin), doomed)
        return doomed
    finally:
        await admin.close()
