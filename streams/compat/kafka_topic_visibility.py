"""A topic counts as created only once the broker's metadata shows it with a leader for
every partition.

Found with `kill -USR2` on a `make demo` that hung at start-up (the first run after the broker
started, every time): Kafka answers CreateTopics once the controller has committed the topic,
but the broker applies that record to the metadata it serves a little later. A client asking
for the topic's metadata in between is told "unknown topic". For a Faust worker that is fatal:

1. Its consumer subscribes to topics created moments before (ours, by `ensure_topics`, and
   Faust's own table changelogs, declared during start-up) and fetches their metadata once;
   all of them come back unknown, and aiokafka does not ask again for five minutes.
2. Faust's partition assignor skips unknown topics ("Ignoring missing topic"), then looks up
   a global table's changelog among the topics it kept and raises `KeyError`.
3. aiokafka hands that error to the consumer's user and waits for it to be collected; Faust
   only collects errors while fetching, and does not fetch before its first assignment. The
   group never forms; `app.start()` never returns.

So both ways a topic gets created wait until it is visible: `tandem.services.kafka_admin`
(our topics) calls `wait_until_visible`, and `apply()` makes Faust's topic declaration do the
same. `apply()` is idempotent (`tandem.streams.compat.apply_all()` calls it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import errors as Errors
from aiokafka.protocol.metadata import MetadataRequest

log = logging.getLogger(__name__)

UPSTREAM = ("Kafka: CreateTopics answers before the broker's metadata serves the topic (by "
            "design, KIP-599 era); Faust's assignor then raises KeyError on the missing "
            "changelog: not reported to faust-streaming")
WRITTEN_FOR = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}
_MARK = "_tandem_waits_until_visible"


async def _not_ready(client: Any, topics: list[str]) -> dict[str, str]:
    """{topic: what is wrong} for topics the broker does not yet serve with a leader for every
    partition. Asks for these topics only (a broker may hold thousands) and never asks the
    broker to auto-create them."""
    resp = await client.send(client.get_random_node(),
                             MetadataRequest(topics, allow_auto_topic_creation=False))
    wrong = {t: "unknown to the broker" for t in topics}
    for error_code, name, _internal, partitions in (t[:4] for t in resp.topics):
        if name not in wrong:
            continue
        if error_code != 0:
            wrong[name] = Errors.for_code(error_code).__name__
        elif not partitions:
            wrong[name] = "no partitions"
        elif any(p[2] in (None, -1) for p in partitions):  # (error, partition, leader, ...)
            wrong[name] = "a partition without a leader"
        else:
            del wrong[name]
    return wrong


async def wait_until_visible(client: Any, topics: Iterable[str], timeout: float = 30.0) -> float:
    """Wait until the broker's metadata (asked through `client`, a started `AIOKafkaClient`)
    shows every topic with a leader for every partition; return the seconds waited.

    Raises `TimeoutError` naming each topic still not visible after `timeout` seconds and why.
    """
    wanted = sorted(set(topics))
    start = time.monotonic()
    while True:
        wrong = await _not_ready(client, wanted) if wanted else {}
        waited = time.monotonic() - start
        if not wrong:
            if waited > 0.5:
                log.info("topics visible in the broker's metadata after %.1f s: %s",
                         waited, ", ".join(wanted))
            return waited
        if waited > timeout:
            raise TimeoutError(
                f"{len(wrong)} topic(s) still not usable {timeout:.0f} s after creation: "
                + "; ".join(f"{t} ({why})" for t, why in sorted(wrong.items())))
        await asyncio.sleep(0.05)  # usually visible within milliseconds on a running broker


async def wait_until_gone(client: Any, topics: Iterable[str], timeout: float = 30.0) -> None:
    """Wait until the broker's metadata no longer serves any of `topics` (deletion, like
    creation, reaches the metadata a little after the broker answered)."""
    doomed = sorted(set(topics))
    deadline = time.monotonic() + timeout
    while doomed:
        wrong = await _not_ready(client, doomed)
        doomed = [t for t in doomed if wrong.get(t) not in ("unknown to the broker",
                                                           "UnknownTopicOrPartitionError")]
        if doomed and time.monotonic() > deadline:
            raise TimeoutError(f"{len(doomed)} topic(s) still served {timeout:.0f} s after "
                               f"deletion: {', '.join(doomed)}")
        if doomed:
            await asyncio.sleep(0.05)


def apply() -> None:
    """Make Faust's topic declaration (tables' changelogs, its assignor's leader topic) return
    only once the topic is visible, as `ensure_topics` does for ours."""
    from faust.transport.drivers.aiokafka import Producer

    if getattr(Producer, _MARK, False):
        return
    create_topic = Producer.create_topic

    async def create_topic_visible(self: Producer, topic: str, *args: Any, **kwargs: Any) -> None:
        await create_topic(self, topic, *args, **kwargs)
        if self.app.conf.topic_allow_declare:
            await wait_until_visible(self._ensure_producer().client, [topic])

    create_topic_visible.__doc__ = create_topic.__doc__
    Producer.create_topic = create_topic_visible  # type: ignore[method-assign]
    setattr(Producer, _MARK, True)


def check() -> list[str]:
    """What this workaround relies on, if it is gone."""
    from faust.transport.drivers.aiokafka import Producer

    return [] if hasattr(Producer, "create_topic") else ["faust Producer.create_topic"]
