"""Fixtures for tests against the real services that `make test` starts.

A missing service makes these tests FAIL with a message saying what to start: they never
skip, so a CI run without a broker cannot pass by accident.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tandem.services.kafka_admin import delete_topics_with_prefix, ensure_topics
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
def topic_prefix() -> Iterator[str]:
    """A fresh topic-name prefix: each test gets its own topics on the shared broker, and
    every topic under it is deleted afterwards (those its workers created too)."""
    prefix = f"test-{uuid.uuid4().hex[:10]}."
    yield prefix
    run_aside(delete_topics_with_prefix(BROKER, prefix))


def run_aside(coro: Any) -> Any:
    """Run a coroutine to completion on its own loop in a thread: a sync fixture's teardown
    must not replace the event loop pytest-asyncio is using (asyncio.run would unset it)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture
async def tandem_topics(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[str]:
    """Creates Tandem's core topics under a fresh prefix (`topic_prefix` deletes them)."""
    await ensure_topics(kafka_bootstrap, T.core_topics(topic_prefix))
    yield topic_prefix


@pytest.fixture
async def worker(kafka_bootstrap: str, tandem_topics: str, tmp_path: Any) -> AsyncIterator[Any]:
    """The stream processors (a worker's Faust app) in this process, on the test's topics."""
    from tandem.streams.app import create_app
    from tandem.streams.settings import Settings

    tandem = create_app(Settings(broker=kafka_bootstrap, topic_prefix=tandem_topics,
                                 app_id=f"{tandem_topics}app", web_enabled=False,
                                 data_dir=str(tmp_path)))
    await tandem.app.start()
    try:
        yield tandem
    finally:
        await tandem.app.stop()


@pytest.fixture
def anyio_backend() -> Iterator[str]:
    yield "asyncio"
