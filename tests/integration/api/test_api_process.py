"""`tandem api` as a process, and a server whose Kafka cannot be reached (UNAVAILABLE)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from api_itest_util import order

from tandem.services.api.server import create_server
from tandem.services.api.stubs import TandemStub
from tandem.v1 import api_pb2

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


def _dead_port() -> int:
    """A local port nothing listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


async def test_unreachable_kafka_is_unavailable_and_not_serving() -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    server, port = await create_server("127.0.0.1:0", f"127.0.0.1:{_dead_port()}", "none.")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = TandemStub(channel)
            for call, req in (
                    (stub.WhatIf, api_pb2.WhatIfRequest(workload=order("w"))),
                    (stub.PlaceAndConnect, api_pb2.PlaceAndConnectRequest(
                        workload=order("w"), idempotency_key="k")),
                    (stub.GetTopology, api_pb2.GetTopologyRequest())):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call(req, timeout=20)
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(health_pb2.HealthCheckRequest(service="tandem.v1.Tandem"),
                                       timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await server.stop(0)


def test_tandem_api_command_serves_and_stops_on_sigterm(kafka_bootstrap: str,
                                                        tandem_topics: str) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    proc = subprocess.Popen(
        [sys.executable, "-m", "tandem.cli", "api", "--listen", "127.0.0.1:0",
         "--broker", kafka_bootstrap, "--topic-prefix", tandem_topics],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        port = 0
        said = []
        for line in proc.stdout:  # the first line names the port (ends when the process does)
            said.append(line)
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        assert port, "tandem api did not say where it listens"
        # Without a token file it runs open, and says so.
        assert "no token file" in "".join(said) and "plaintext" in said[-1], said
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for reply in health.Watch(health_pb2.HealthCheckRequest(service="tandem.v1.Tandem"),
                                      timeout=60):
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            topo = TandemStub(channel).GetTopology(api_pb2.GetTopologyRequest(), timeout=10)
            assert list(topo.sites) == []  # nothing in this prefix's inventory
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
