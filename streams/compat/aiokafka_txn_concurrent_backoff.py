"""aiokafka sleeps 20 ms before every transaction that follows another (KAFKA-5477).

A transactional producer's first send in a transaction asks the coordinator to add the
partition (AddPartitionsToTxn). Right after the previous commit the coordinator is still writing
that transaction's markers and answers CONCURRENT_TRANSACTIONS; aiokafka 0.14 then waits
`BACKOFF_OVERRIDE` = 20 ms (its comment cites KAFKA-5477) before asking again. Tandem commits a
transaction per partition batch, back to back, so every batch paid 20 ms: measured on the
local broker, p50 32 ms per transaction with the default, 9 ms with 2 ms (100 transactions).
The Java client, after KAFKA-5477, retries that case after 20 ms too, but its newer
versions (KIP-890) avoid the round trip altogether; aiokafka does not.

The fix: 2 ms. The producers of `tandem.streams.txloop` also set `retry_backoff_ms=10`, which
aiokafka uses for the same answer to AddOffsetsToTxn.
"""

from __future__ import annotations

UPSTREAM = "KAFKA-5477 (cited in aiokafka/producer/sender.py); no aiokafka issue found"
WRITTEN_FOR = {"aiokafka": "0.14.0"}
BACKOFF_S = 0.002


def apply() -> None:
    from aiokafka.producer import sender

    sender.BACKOFF_OVERRIDE = BACKOFF_S


def check() -> list[str]:
    """What this workaround relies on, if it is gone."""
    from aiokafka.producer import sender

    return [] if hasattr(sender, "BACKOFF_OVERRIDE") else ["sender.BACKOFF_OVERRIDE is gone"]
