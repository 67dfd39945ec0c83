"""TLS, mutual TLS, bearer tokens and tenant isolation, against a real server on a socket with
a real broker and worker. Certificates are made by the test (tls_util, `cryptography`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from aiokafka.partitioner import DefaultPartitioner
from api_itest_util import details, order, publish_federation
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tls_util import Pki, make_pki

from itest_wait import until
from tandem.services.api.auth import Tokens
from tandem.services.api.server import Tls, create_server
from tandem.services.api.stubs import TandemStub
from tandem.v1 import api_pb2
from tandem.v1 import inventory_pb2 as I
from tandem.v1 import workload_pb2 as W

pytestmark = pytest.mark.integration
TOKENS = Tokens.parse("""
acme-token    tenant=acme
globex-token  tenant=globex
noc-token     role=noc
ops-token     role=operator
""")
Serve = Callable[..., Awaitable[int]]


@pytest.fixture
async def serve(kafka_bootstrap: str, worker, tandem_topics: str) -> AsyncIterator[Serve]:  # type: ignore[no-untyped-def]
    """Starts API servers (with the TLS and tokens given) on port 0 and stops them after."""
    await publish_federation(kafka_bootstrap, tandem_topics)
    servers = []

    async def start(tls: Tls | None = None, tokens: Tokens | None = None) -> int:
        server, port = await create_server("127.0.0.1:0", kafka_bootstrap, tandem_topics, tls,
                                           tokens)
        await server.start()
        servers.append(server)
        await until(lambda: server.view.serving, "the server's fold to catch up", timeout=60)
        return port

    yield start
    for s in servers:
        await s.stop(0.5)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


def creds(pki: Pki, root: bytes | None = None, client: bool = False,
          rogue: bool = False) -> grpc.ChannelCredentials:
    c = pki.rogue_client if rogue else pki.client
    return grpc.ssl_channel_credentials(root_certificates=root or pki.ca.cert,
                                        private_key=c.key if client or rogue else None,
                                        certificate_chain=c.cert if client or rogue else None)


async def _code(call: Awaitable[Any]) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def _topology(channel: grpc.aio.Channel, **kw: Any) -> grpc.StatusCode:
    try:
        return await _code(TandemStub(channel).GetTopology(api_pb2.GetTopologyRequest(),
                                                           timeout=10, **kw))
    finally:
        await channel.close()


async def test_tls_serves_clients_that_trust_its_ca_only(serve, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    port = await serve(tls=Tls(pki.server.cert, pki.server.key))
    addr = f"127.0.0.1:{port}"
    assert await _topology(grpc.aio.secure_channel(addr, creds(pki))) == grpc.StatusCode.OK
    assert await _topology(grpc.aio.insecure_channel(addr)) == grpc.StatusCode.UNAVAILABLE
    assert await _topology(grpc.aio.secure_channel(addr, creds(pki, root=pki.rogue_ca.cert))
                           ) == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_wants_a_client_certificate_of_its_ca(serve, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    port = await serve(tls=Tls(pki.server.cert, pki.server.key, client_ca=pki.ca.cert),
                       tokens=TOKENS)
    addr = f"127.0.0.1:{port}"
    ok = grpc.composite_channel_credentials(creds(pki, client=True),
                                            grpc.access_token_call_credentials("acme-token"))
    assert await _topology(grpc.aio.secure_channel(addr, ok)) == grpc.StatusCode.OK
    # A certificate, but no token: the transport lets it in, the API does not.
    assert await _topology(grpc.aio.secure_channel(addr, creds(pki, client=True))
                           ) == grpc.StatusCode.UNAUTHENTICATED
    token = grpc.access_token_call_credentials("acme-token")
    for bad in (creds(pki), creds(pki, rogue=True)):  # no client certificate; another CA's
        ch = grpc.aio.secure_channel(addr, grpc.composite_channel_credentials(bad, token))
        assert await _topology(ch) == grpc.StatusCode.UNAVAILABLE


def _as(token: str) -> dict[str, Any]:
    return {"metadata": (("authorization", f"Bearer {token}"),)}


async def test_tenants_see_and_change_only_their_own_and_the_noc_reads_all(serve) -> None:  # type: ignore[no-untyped-def]
    port = await serve(tokens=TOKENS)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = TandemStub(channel)
    acme, globex, noc = _as("acme-token"), _as("globex-token"), _as("noc-token")
    try:
        # No token, or an unknown one: UNAUTHENTICATED; health stays open (load balancers).
        assert await _code(stub.GetTopology(api_pb2.GetTopologyRequest(), timeout=10)) == \
            grpc.StatusCode.UNAUTHENTICATED
        assert await _code(stub.GetTopology(api_pb2.GetTopologyRequest(), timeout=10,
                                            **_as("guess"))) == grpc.StatusCode.UNAUTHENTICATED
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING

        # Each tenant orders; a tenant left empty is the token's own.
        mine = order("w-acme")
        mine.tenant = ""
        a = await stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
            workload=mine, idempotency_key="a"), timeout=60, **acme)
        assert a.decision.tenant == "acme"
        await stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
            workload=order("w-globex", tenant="globex"), idempotency_key="g"), timeout=60,
            **globex)

        # acme cannot see globex's workload: NOT_FOUND, as if it did not exist.
        got = await stub.GetWorkload(api_pb2.GetWorkloadRequest(workload_id="w-acme"),
                                     timeout=10, **acme)
        assert got.workload.tenant == "acme"
        assert await _code(stub.GetWorkload(api_pb2.GetWorkloadRequest(
            workload_id="w-globex"), timeout=10, **acme)) == grpc.StatusCode.NOT_FOUND
        listed = await stub.ListWorkloads(api_pb2.ListWorkloadsRequest(), timeout=10, **acme)
        assert [w.workload_id for w in listed.workloads] == ["w-acme"]
        # Naming another tenant is asking for what the token does not allow.
        for call in (stub.GetWorkload(api_pb2.GetWorkloadRequest(workload_id="w-globex",
                                                                 tenant="globex"),
                                      timeout=10, **acme),
                     stub.ListWorkloads(api_pb2.ListWorkloadsRequest(tenant="globex"),
                                        timeout=10, **acme),
                     stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
                         workload=order("w-x", tenant="globex"), idempotency_key="x"),
                         timeout=10, **acme),
                     stub.Release(api_pb2.ReleaseWorkloadRequest(
                         release=W.ReleaseRequest(tenant="globex", workload_id="w-globex"),
                         idempotency_key="r"), timeout=10, **acme)):
            assert await _code(call) == grpc.StatusCode.PERMISSION_DENIED
        # Releasing globex's workload under its own name: NOT_FOUND; globex's still holds.
        assert await _code(stub.Release(api_pb2.ReleaseWorkloadRequest(
            release=W.ReleaseRequest(workload_id="w-globex"), idempotency_key="r2"),
            timeout=10, **acme)) == grpc.StatusCode.NOT_FOUND
        # Nor can acme take over globex's workload id with an order of its own.
        assert await _code(stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
            workload=order("w-globex"), idempotency_key="steal"), timeout=10, **acme)) == \
            grpc.StatusCode.ALREADY_EXISTS
        g = await stub.GetWorkload(api_pb2.GetWorkloadRequest(workload_id="w-globex"),
                                   timeout=10, **globex)
        assert g.workload.admitted and g.workload.tenant == "globex"

        # The NOC sees everything, changes nothing; WhatIf commits nothing, so it may ask.
        listed = await stub.ListWorkloads(api_pb2.ListWorkloadsRequest(), timeout=10, **noc)
        assert [w.workload_id for w in listed.workloads] == ["w-acme", "w-globex"]
        await stub.GetWorkload(api_pb2.GetWorkloadRequest(workload_id="w-globex"), timeout=10,
                               **noc)
        what = await stub.WhatIf(api_pb2.WhatIfRequest(workload=order("w-noc")), timeout=10,
                                 **noc)
        assert what.decision.placements
        for call in (stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
                         workload=order("w-noc"), idempotency_key="n"), timeout=10, **noc),
                     stub.Release(api_pb2.ReleaseWorkloadRequest(
                         release=W.ReleaseRequest(tenant="acme", workload_id="w-acme"),
                         idempotency_key="n"), timeout=10, **noc)):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            [info] = [d for d in details(err.value) if d.DESCRIPTOR.name == "ErrorInfo"]
            assert info.reason == "READ_ONLY_ROLE"

        # Maintenance is the operator's: tenants and the NOC are refused, and the operator
        # orders nothing for a tenant.
        ops = _as("ops-token")
        link = api_pb2.SetLinkAdminStateRequest(link_id="par-lon", idempotency_key="ops-1",
                                                admin_state=I.ADMIN_STATE_DISABLED)
        drain = api_pb2.DrainSiteRequest(site_id="zrh", idempotency_key="ops-2")
        for md in (acme, noc):
            assert await _code(stub.SetLinkAdminState(link, timeout=30, **md)) == \
                grpc.StatusCode.PERMISSION_DENIED
            assert await _code(stub.DrainSite(drain, timeout=30, **md)) == \
                grpc.StatusCode.PERMISSION_DENIED
        done = await stub.SetLinkAdminState(link, timeout=60, **ops)
        assert done.link.link.admin_state == I.ADMIN_STATE_DISABLED
        assert await _code(stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
            workload=order("w-ops"), idempotency_key="o"), timeout=10, **ops)) == \
            grpc.StatusCode.PERMISSION_DENIED

        # Watching: acme's stream carries acme's decisions only, the NOC's both; naming
        # another tenant is refused. w-acme-1 shares w-globex's partition (Kafka's default
        # partitioner, key: workload id) and comes after it: once acme's stream has it, it has
        # read past globex's decision.
        part = DefaultPartitioner()
        assert part(b"w-acme-1", [0, 1, 2], [0, 1, 2]) == part(b"w-globex", [0, 1, 2], [0, 1, 2])
        await stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
            workload=order("w-acme-1", bw=50), idempotency_key="a1"), timeout=60, **acme)
        kinds = [api_pb2.EVENT_KIND_DECISION]
        seen: dict[str, set[str]] = {"acme": set(), "noc": set()}

        async def read(who: str, md: dict[str, Any]) -> None:
            async for ev in stub.WatchEvents(api_pb2.WatchEventsRequest(
                    kinds=kinds, from_start=True), timeout=60, **md):
                seen[who].add(ev.decision.workload_id)

        tasks = [asyncio.create_task(read("acme", acme)), asyncio.create_task(read("noc", noc))]
        try:
            await until(lambda: seen["noc"] == {"w-acme", "w-acme-1", "w-globex"}
                        and "w-acme-1" in seen["acme"],
                        lambda: f"the decisions on both streams ({seen})", timeout=60)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert seen["acme"] == {"w-acme", "w-acme-1"}
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in stub.WatchEvents(api_pb2.WatchEventsRequest(tenant="globex"),
                                            timeout=10, **acme):
                pass
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await channel.close()


def test_tandem_api_command_with_mutual_tls_and_a_token_file(
        kafka_bootstrap: str, tandem_topics: str, pki: Pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import re
    import signal
    import subprocess
    import sys

    files = pki.write(tmp_path)
    tokens = tmp_path / "tokens"
    tokens.write_text("acme-token tenant=acme\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tandem.cli", "api", "--listen", "127.0.0.1:0",
         "--broker", kafka_bootstrap, "--topic-prefix", tandem_topics,
         "--tls-cert", str(files["server.crt"]), "--tls-key", str(files["server.key"]),
         "--client-ca", str(files["ca.crt"]), "--tokens", str(tokens)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        port, said = 0, []
        for line in proc.stdout:
            said.append(line)
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        assert port and "mutual TLS, 1 bearer token(s)" in said[-1], said
        addr = f"127.0.0.1:{port}"
        mtls = creds(pki, client=True)
        with grpc.secure_channel(addr, grpc.composite_channel_credentials(
                mtls, grpc.access_token_call_credentials("acme-token"))) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for reply in health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60):
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            TandemStub(channel).GetTopology(api_pb2.GetTopologyRequest(), timeout=10)
        with grpc.secure_channel(addr, mtls) as channel:
            with pytest.raises(grpc.RpcError) as err:
                TandemStub(channel).GetTopology(api_pb2.GetTopologyRequest(), timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
