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

The fix tracks the topic on the fast path too. It changes no request: the topic is already
in the metadata, and later refreshes keep it there. `apply()` is idempotent and runs when
`tandem.streams` is imported, which every Kafka-using part of Tandem does.
"""

from __future__ import annotations

from typing import Any

from aiokafka.client import AIOKafkaClient

_MARK = "_tandem_tracks_every_topic"


def apply() -> None:
    """Patch `AIOKafkaClient._wait_on_metadata` (once) so that it tracks every topic."""
    if getattr(AIOKafkaClient, _MARK, False):
        return
    original = AIOKafkaClient._wait_on_metadata  # noqa: SLF001

    async def wait_on_metadata(self: AIOKafkaClient, topic: str) -> Any:
        # The set the metadata synchronizer reads: a topic in it stays in every refresh.
        self._topics.add(topic)  # noqa: SLF001
        return await original(self, topic)

    wait_on_metadata.__doc__ = original.__doc__
    AIOKafkaClient._wait_on_metadata = wait_on_metadata  # type: ignore[method-assign]  # noqa: SLF001
    setattr(AIOKafkaClient, _MARK, True)
