"""A call whose deadline passes before its decision reports the request it sent; the order is
still decided once, and the same key then returns that decision."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from api_itest_util import decisions, order

from tandem.streams.app import create_app
from tandem.v1 import api_pb2, decision_pb2

pytestmark = pytest.mark.integration


async def test_deadline_exceeded_then_the_same_key_gets_the_one_decision(
        api, worker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    await worker.app.stop()  # nobody decides for now
    call = api_pb2.PlaceAndConnectRequest(workload=order("w-late"), idempotency_key="late")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.stub.PlaceAndConnect(call, timeout=2)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "repeat the call with the same idempotency key" in (err.value.details() or "")
    # A worker comes back (same app id: it takes the decider over) and decides the order.
    again = create_app(worker.settings)
    await again.app.start()
    try:
        reply = await api.stub.PlaceAndConnect(call, timeout=90)
        assert reply.decision.kind == decision_pb2.DECISION_KIND_PLACED
        published = [d for d in await decisions(api.bootstrap, api.prefix)
                     if d.request_id == reply.request_id]
        assert len(published) == 1
    finally:
        await again.app.stop()
