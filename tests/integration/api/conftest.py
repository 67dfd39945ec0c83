"""Fixtures of the API integration tests: a real in-process worker (as the decision tests start
one), the demo federation on the broker, the API server on a real socket (port 0) and a Python
client on an asyncio channel. Nothing skips: no broker fails the test (tests/integration
conftest)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from api_itest_util import publish_federation

from tandem.services.api.client import until_serving
from tandem.services.api.server import ApiServer, create_server
from tandem.services.api.stubs import TandemStub
from tandem.streams.app import Tandem


@dataclass
class Api:
    server: ApiServer
    port: int
    channel: grpc.aio.Channel
    stub: TandemStub
    prefix: str
    bootstrap: str


@pytest.fixture
async def api(kafka_bootstrap: str, worker: Tandem, tandem_topics: str) -> AsyncIterator[Api]:
    """The API server over a socket, once the federation is folded and the server serves."""
    await publish_federation(kafka_bootstrap, tandem_topics)
    server, port = await create_server("127.0.0.1:0", kafka_bootstrap, tandem_topics)
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        await until_serving(channel)
        yield Api(server, port, channel, TandemStub(channel), tandem_topics, kafka_bootstrap)
    finally:
        await channel.close()
        await server.stop(0.5)
