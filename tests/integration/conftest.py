"""Fixtures for tests against the real services that `make test` starts.

A missing service makes these tests FAIL with a message saying what to start: they never
skip, so a CI run without a broker cannot pass by accident.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tandem.services.kafka_admin import delete_topics, ensure_topics
from tandem.streams import topics as T

BROKER = os.environ.get("TANDEM_KAFKA", "127.0.0.1:9092")


async def _broker_answers(bootstrap: str) -> str | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await asyncio.wait_for(admin.start(), 15)
        await admin.list_topics()
        return None
    except Exception as exc:  # any failure means: no usable broker
        return repr(exc)
    finally:
        try:
            await admin.close()
        except Exception:
            pass


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The address of a live Kafka broker; fails (never skips) if none answers."""
    err = asyncio.run(_broker_answers(BROKER))
    if err is not None:
        pytest.fail(f"no Kafka broker answers at {BROKER} ({err}); `make test` starts one "
                    f"(infra/kafka/kafkactl up)", pytrace=False)
    return BROKER


@pytest.fixture
def topic_prefix() -> str:
    """A fresh topic-name prefix: each test gets its own topics on the shared broker."""
    return f"test-{uuid.uuid4().hex[:10]}."


@pytest.fixture
async def tandem_topics(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[str]:
    """Creates Tandem's core topics under a fresh prefix, deletes them afterwards."""
    specs = T.core_topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, specs)
    yield topic_prefix
    await delete_topics(kafka_bootstrap, [name for name, _ in specs])


@pytest.fixture
def anyio_backend() -> Iterator[str]:
    yield "asyncio"
