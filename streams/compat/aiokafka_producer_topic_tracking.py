"""Every topic an aiokafka client produces to stays in its metadata (an aiokafka 0.14 defect).

Found with `kill -USR2` on a hung worker: its producer held a batch for a live topic whose
partition leader it "did not know", and flushing waited forever (a worker's stop, or Faust's
commit during a rebalance, hung with it). The cause, in `AIOKafkaClient`:

1. A client starts by fetching metadata for *all* topics (its tracked set is empty).
2. `_wait_on_metadata(topic)` returns at once for a topic already in that metadata and does
   not add it to the tracked set.
3. The first send to a topic absent from the metadata (one created since: Tandem creates a
   site's command topics on first use) tracks that topic alone; from then on metadata is
   fetched for tracked topics only, and every untracked topic drops out of it.
4. A batch appended for such a topic before that refresh now has no known leader; the sender
   asks for metadata again and again, for a list that never includes its topic. It is sent
   only if something else sends to the same topic later (which tracks it); the last message
   before a quiet period, or before a stop, is stuck.

The fix, for producers only: before a send, a topic the producer's client already knows but
does not track is tracked. It changes no request (the topic is in the metadata; later
refreshes keep it there). Consumer clients are left alone: their tracked set is their
subscription, and a topic added behind its back stops `set_topics` from refreshing metadata
for a new subscription (a Faust worker then waits for topics it never sees). `apply()` is
idempotent; `tandem.streams.compat.apply_all()` calls it at every Kafka process's start.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

UPSTREAM = "not reported upstream (searched aio-libs/aiokafka issues, 2026-11)"
WRITTEN_FOR = {"aiokafka": "0.14.0"}
_MARK = "_tandem_tracks_every_topic"


def _track(producer: AIOKafkaProducer, topic: str) -> None:
    client = producer.client
    if topic not in client._topics and client.cluster.partitions_for_topic(topic) is not None:  # noqa: SLF001
        client._topics.add(topic)  # noqa: SLF001


def apply() -> None:
    """Patch `AIOKafkaProducer.send` and `send_batch` (once) to track every topic they use."""
    if getattr(AIOKafkaProducer, _MARK, False):
        return
    send, send_batch = AIOKafkaProducer.send, AIOKafkaProducer.send_batch

    async def tracked_send(self: AIOKafkaProducer, topic: str, *args: Any, **kwargs: Any) -> Any:
        _track(self, topic)
        return await send(self, topic, *args, **kwargs)

    async def tracked_send_batch(self: AIOKafkaProducer, batch: Any, topic: str,
                                 *args: Any, **kwargs: Any) -> Any:
        _track(self, topic)
        return await send_batch(self, batch, topic, *args, **kwargs)

    tracked_send.__doc__, tracked_send_batch.__doc__ = send.__doc__, send_batch.__doc__
    AIOKafkaProducer.send = tracked_send  # type: ignore[method-assign]
    AIOKafkaProducer.send_batch = tracked_send_batch  # type: ignore[method-assign]
    setattr(AIOKafkaProducer, _MARK, True)


def check() -> list[str]:
    """What this workaround relies on, if it is gone."""
    from aiokafka.client import AIOKafkaClient

    missing = [] if hasattr(AIOKafkaProducer, "send_batch") else ["AIOKafkaProducer.send_batch"]
    client = AIOKafkaClient.__init__.__code__.co_names
    return missing + ([] if "_topics" in client else ["AIOKafkaClient._topics"])
