"""Approvals (issue 13), against a real server on a socket, a real broker, the in-process worker,
a compute control unit process and a webhook receiver on a real HTTP socket: an order held for
an approval reserves its capacity and runs nothing; Approve carries it out (ACTIVE through the
unit), Reject and the time limit release it; the approval events reach WatchEvents and the
webhook (retried when it refuses); only the approver role (or the operator) may judge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web
from api_itest_util import compute_only, details, order, publish_federation, start_compute, stop

from itest_wait import until
from tandem.services.api.approvals import Policy, Webhook
from tandem.services.api.auth import Tokens
from tandem.services.api.server import create_server
from tandem.services.api.stubs import TandemStub
from tandem.v1 import api_pb2, approval_pb2 as A, decision_pb2 as D

pytestmark = pytest.mark.integration
TOKENS = Tokens.parse("""
acme-token  tenant=acme
noc-token   role=noc
cab-token   role=approver  name=change-board
""")


class Hook:
    """A webhook receiver: refuses the first post (503), takes the rest."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.refused = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        async def post(req: web.Request) -> web.Response:
            if self.refused == 0:
                self.refused += 1
                return web.Response(status=503)
            self.posts.append((dict(req.headers), await req.json()))
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/approvals", post)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/approvals"

    def states(self, workload_id: str) -> list[str]:
        return [body["state"] for _h, body in self.posts if body["workloadId"] == workload_id]


Serve = Callable[..., Awaitable[TandemStub]]


@pytest.fixture
async def serve(kafka_bootstrap: str, worker, tandem_topics: str  # type: ignore[no-untyped-def]
                ) -> AsyncIterator[Serve]:
    """Starts API servers (with the policy, webhook and tokens given) and stops them after."""
    await publish_federation(kafka_bootstrap, tandem_topics)
    started: list[Any] = []

    async def start(policy: Policy | None = None, hook: Hook | None = None,
                    tokens: Tokens | None = None) -> TandemStub:
        webhook = None if hook is None else Webhook(hook.url, kafka_bootstrap, tandem_topics)
        server, port = await create_server("127.0.0.1:0", kafka_bootstrap, tandem_topics,
                                           tokens=tokens, policy=policy, webhook=webhook)
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        started.append((server, channel))
        await until(lambda: server.view.serving, "the server's fold to catch up", timeout=60)
        return TandemStub(channel)

    yield start
    for server, channel in started:
        await channel.close()
        await server.stop(0.5)


async def _workload(stub: TandemStub, wid: str, **kw: Any) -> api_pb2.Workload:
    return (await stub.GetWorkload(api_pb2.GetWorkloadRequest(workload_id=wid), timeout=10,
                                   **kw)).workload


def _reserved(topo: api_pb2.GetTopologyResponse) -> float:
    return sum(lv.reserved_ab_mbps + lv.reserved_ba_mbps for lv in topo.links)


async def test_a_held_order_runs_only_once_approved(serve: Serve, kafka_bootstrap: str,
                                                    tandem_topics: str, tmp_path: Path) -> None:
    hook = Hook()
    await hook.start()
    stub = await serve(Policy({"acme": 0}), hook)
    unit = start_compute(kafka_bootstrap, tandem_topics, "ams", tmp_path)
    events: list[api_pb2.WatchEvent] = []
    stream = stub.WatchEvents(api_pb2.WatchEventsRequest(kinds=[api_pb2.EVENT_KIND_APPROVAL],
                                                         tenant="acme"), timeout=240)
    await asyncio.wait_for(stream.initial_metadata(), 30)

    async def follow() -> None:
        async for ev in stream:
            events.append(ev)

    follower = asyncio.create_task(follow())
    try:
        # wait_active: a held order is answered at once, HELD (nothing runs before approval)
        reply = await stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
            workload=compute_only("w-held"), idempotency_key="held-1", wait_active=True),
            timeout=60)
        d = reply.decision
        assert d.kind == D.DECISION_KIND_PLACED and d.HasField("hold") and not d.steps
        assert reply.order_state == api_pb2.SERVICE_ORDER_STATE_HELD
        hold_id = d.hold.hold_id

        async def held() -> bool:
            w = await _workload(stub, "w-held")
            return (w.phase == D.WORKLOAD_PHASE_HELD
                    and w.order_state == api_pb2.SERVICE_ORDER_STATE_HELD)

        await until(held, "w-held HELD", timeout=30)
        await until(lambda: any(e.approval.state == A.APPROVAL_STATE_PENDING for e in events),
                    "the PENDING approval event on the stream", timeout=30)
        pending = next(e.approval for e in events if e.approval.state == A.APPROVAL_STATE_PENDING)
        assert pending.hold_id == hold_id and pending.decision.placements[0].site_id == "ams"
        # the webhook refused once (503), got it on the retry, with the event id as the key
        await until(lambda: hook.states("w-held") == ["APPROVAL_STATE_PENDING"],
                    "the webhook to receive the hold", timeout=30)
        headers, body = hook.posts[0]
        assert hook.refused == 1 and headers["Idempotency-Key"] == body["meta"]["eventId"]
        assert body["holdId"] == hold_id and body["decision"]["placements"]

        call = api_pb2.ApprovalCall(workload_id="w-held", hold_id=hold_id, comment="CAB-7",
                                    idempotency_key="ok-1")
        go = await stub.Approve(call, timeout=60)
        assert not go.decision.HasField("hold") and go.decision.steps
        assert "approved by anyone (CAB-7)" in go.decision.explanation.summary

        async def active() -> bool:
            w = await _workload(stub, "w-held")
            return (w.phase == D.WORKLOAD_PHASE_ACTIVE
                    and w.order_state == api_pb2.SERVICE_ORDER_STATE_COMPLETED)

        await until(active, "w-held ACTIVE once approved", timeout=90)
        await until(lambda: hook.states("w-held") == ["APPROVAL_STATE_PENDING",
                                                      "APPROVAL_STATE_APPROVED"],
                    "the webhook to receive the approval", timeout=30)
        # the same key: the same answer; a new verdict: nothing is held any more
        again = await stub.Approve(call, timeout=30)
        assert again.decision.meta.event_id == go.decision.meta.event_id
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await stub.Reject(api_pb2.ApprovalCall(workload_id="w-held",
                                                   idempotency_key="late-1"), timeout=30)
        assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "no order held" in (late.value.details() or "")
    finally:
        follower.cancel()
        stop(unit)
        assert hook.runner is not None
        await hook.runner.cleanup()


async def test_rejecting_releases_the_capacity_held(serve: Serve) -> None:
    stub = await serve(Policy({"acme": 0}))
    before = _reserved(await stub.GetTopology(api_pb2.GetTopologyRequest(), timeout=10))
    reply = await stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
        workload=order("w-rej", bw=300), idempotency_key="rej-1"), timeout=60)
    assert reply.decision.HasField("hold") and reply.decision.paths
    held = _reserved(await stub.GetTopology(api_pb2.GetTopologyRequest(), timeout=10))
    assert held > before  # no other order may take it meanwhile
    no = await stub.Reject(api_pb2.ApprovalCall(workload_id="w-rej", comment="over budget",
                                                idempotency_key="no-1"), timeout=60)
    assert no.decision.kind == D.DECISION_KIND_RELEASED and not no.decision.steps
    assert _reserved(await stub.GetTopology(api_pb2.GetTopologyRequest(), timeout=10)) == before

    async def cancelled() -> bool:
        w = await _workload(stub, "w-rej")
        return (w.phase == D.WORKLOAD_PHASE_RELEASED
                and w.order_state == api_pb2.SERVICE_ORDER_STATE_CANCELLED)

    await until(cancelled, "w-rej released", timeout=30)


async def test_an_order_not_judged_in_time_expires(serve: Serve) -> None:
    stub = await serve()  # no policy: the order asks for the approval itself
    w = order("w-exp", bw=100)
    w.approval.required, w.approval.hold_seconds = True, 2
    reply = await stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
        workload=w, idempotency_key="exp-1"), timeout=60)
    assert reply.decision.HasField("hold")

    async def expired() -> bool:
        got = await _workload(stub, "w-exp")
        return got.phase == D.WORKLOAD_PHASE_RELEASED

    await until(expired, "the hold of w-exp to expire", timeout=60)
    last = (await _workload(stub, "w-exp")).decision
    assert last.kind == D.DECISION_KIND_RELEASED
    assert "time limit passed" in last.explanation.summary
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Approve(api_pb2.ApprovalCall(workload_id="w-exp", idempotency_key="too-late"),
                           timeout=30)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_only_the_approver_role_judges_and_bad_calls_name_the_field(serve: Serve) -> None:
    stub = await serve(Policy({"acme": 0}), tokens=TOKENS)
    as_ = {who: [("authorization", f"Bearer {who}-token")] for who in ("acme", "noc", "cab")}
    reply = await stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
        workload=order("w-auth", tenant=""), idempotency_key="auth-1"), timeout=60,
        metadata=as_["acme"])
    assert reply.decision.HasField("hold") and reply.decision.tenant == "acme"
    call = api_pb2.ApprovalCall(workload_id="w-auth", idempotency_key="auth-ok")
    for who in ("acme", "noc"):  # a tenant may not approve its own order; the NOC reads only
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Approve(call, timeout=30, metadata=as_[who])
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (await _workload(stub, "w-auth", metadata=as_["acme"])).phase == D.WORKLOAD_PHASE_HELD
    for bad, field in ((api_pb2.ApprovalCall(workload_id="w-auth"), "idempotency_key"),
                       (api_pb2.ApprovalCall(idempotency_key="k"), "workload_id")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Approve(bad, timeout=30, metadata=as_["cab"])
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        [br] = [x for x in details(err.value) if hasattr(x, "field_violations")]
        assert br.field_violations[0].field == field
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Approve(api_pb2.ApprovalCall(workload_id="nobody", idempotency_key="k2"),
                           timeout=30, metadata=as_["cab"])
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    w = order("w-long")
    w.approval.required, w.approval.hold_seconds = True, 8 * 24 * 3600
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
            workload=w, idempotency_key="long-1"), timeout=30, metadata=as_["acme"])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "hold_seconds" in (err.value.details() or "")
    ok = await stub.Approve(call, timeout=60, metadata=as_["cab"])
    assert "approved by change-board (role 'approver')" in ok.decision.explanation.summary
    assert ok.decision.steps and not ok.decision.HasField("hold")
