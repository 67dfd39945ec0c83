"""PlaceAndConnect(wait_active) and the order states, against a real server, broker, worker and
compute control unit process (`tandem compute --driver sim`): the call answers with the status
that ended carrying the decision out, and GetWorkload / ListWorkloads show the phase and the
TM Forum order state the status events say."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from api_itest_util import compute_only, start_compute, stop

from itest_wait import until
from tandem.v1 import api_pb2, decision_pb2
from tandem.v1 import workload_pb2 as W

D = decision_pb2
pytestmark = pytest.mark.integration


async def _workload(api, wid: str) -> api_pb2.Workload:  # type: ignore[no-untyped-def]
    return (await api.stub.GetWorkload(api_pb2.GetWorkloadRequest(workload_id=wid),
                                       timeout=10)).workload


async def test_wait_active_answers_once_the_unit_made_it_active(
        api, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    unit = start_compute(api.bootstrap, api.prefix, "ams", tmp_path)
    try:
        call = api_pb2.PlaceAndConnectRequest(workload=compute_only("w-act"),
                                              idempotency_key="act-1", wait_active=True)
        reply = await api.stub.PlaceAndConnect(call, timeout=120)
        d = reply.decision
        assert d.kind == D.DECISION_KIND_PLACED and d.placements[0].site_id == "ams"
        assert reply.status.phase == D.WORKLOAD_PHASE_ACTIVE, reply.status
        assert reply.status.decision_id == d.meta.event_id
        assert reply.status.steps_done == reply.status.steps == len(d.steps) > 0
        assert reply.order_state == api_pb2.SERVICE_ORDER_STATE_COMPLETED
        w = await _workload(api, "w-act")
        assert w.phase == D.WORKLOAD_PHASE_ACTIVE and w.admitted
        assert w.order_state == api_pb2.SERVICE_ORDER_STATE_COMPLETED
        assert w.status.decision_id == d.meta.event_id
        listed = await api.stub.ListWorkloads(api_pb2.ListWorkloadsRequest(
            phases=[D.WORKLOAD_PHASE_ACTIVE]), timeout=10)
        assert [x.workload_id for x in listed.workloads] == ["w-act"]
        # The same key again: the same decision and the same end, at once.
        again = await api.stub.PlaceAndConnect(call, timeout=10)
        assert again.decision.meta.event_id == d.meta.event_id
        assert again.status.SerializeToString() == reply.status.SerializeToString()
        # Without wait_active a new order is answered on its decision: acknowledged.
        other = await api.stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
            workload=compute_only("w-ack", vms=1), idempotency_key="ack-1"), timeout=60)
        assert other.order_state == api_pb2.SERVICE_ORDER_STATE_ACKNOWLEDGED
        assert not other.HasField("status")
        # Released: the unit deletes the VMs; the order is then cancelled.
        await api.stub.Release(api_pb2.ReleaseWorkloadRequest(
            release=W.ReleaseRequest(tenant="acme", workload_id="w-act"),
            idempotency_key="rel-act"), timeout=60)

        async def released() -> bool:
            w = await _workload(api, "w-act")
            return (w.phase == D.WORKLOAD_PHASE_RELEASED
                    and w.order_state == api_pb2.SERVICE_ORDER_STATE_CANCELLED)

        await until(released, "w-act released by its unit", timeout=90)
    finally:
        stop(unit)


async def test_wait_active_answers_failed_when_the_unit_refuses_a_step(
        api, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    unit = start_compute(api.bootstrap, api.prefix, "ams", tmp_path, fail="w-bad-app-1")
    # The rollback raises an alarm naming the workload: watched by tenant and site.
    alarms: list[api_pb2.WatchEvent] = []
    stream = api.stub.WatchEvents(api_pb2.WatchEventsRequest(
        kinds=[api_pb2.EVENT_KIND_ALARM], tenant="acme", site_id="ams"), timeout=180)
    await asyncio.wait_for(stream.initial_metadata(), 30)

    async def read() -> None:
        async for ev in stream:
            alarms.append(ev)

    reader = asyncio.create_task(read())
    try:
        reply = await api.stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
            workload=compute_only("w-bad"), idempotency_key="bad-1", wait_active=True),
            timeout=120)
        assert reply.decision.kind == D.DECISION_KIND_PLACED
        assert reply.status.phase == D.WORKLOAD_PHASE_FAILED, reply.status
        assert "w-bad-app-1" in reply.status.reason
        assert reply.order_state == api_pb2.SERVICE_ORDER_STATE_FAILED

        async def rolled_back() -> bool:
            w = await _workload(api, "w-bad")
            return (w.phase == D.WORKLOAD_PHASE_ROLLED_BACK and not w.admitted
                    and w.order_state == api_pb2.SERVICE_ORDER_STATE_FAILED)

        await until(rolled_back, "w-bad rolled back", timeout=90)
        await until(lambda: any(a.alarm.workload_id == "w-bad" for a in alarms),
                    "the rollback's alarm on acme's stream for ams", timeout=60)
        assert all(a.kind == api_pb2.EVENT_KIND_ALARM for a in alarms)
    finally:
        stream.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        stop(unit)


async def test_wait_active_past_its_deadline_reports_the_decision_and_progress(
        api) -> None:  # type: ignore[no-untyped-def]
    # No compute unit: the first step is sent and never acknowledged (within this deadline).
    call = api_pb2.PlaceAndConnectRequest(workload=compute_only("w-slow"),
                                          idempotency_key="slow-1", wait_active=True)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.stub.PlaceAndConnect(call, timeout=4)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    msg = err.value.details() or ""
    assert msg.startswith("decided (DECISION_KIND_PLACED, decision "), msg
    w = await _workload(api, "w-slow")
    assert w.admitted and w.decision.meta.event_id in msg

    async def provisioning() -> bool:
        w = await _workload(api, "w-slow")
        return (w.phase == D.WORKLOAD_PHASE_PROVISIONING
                and w.order_state == api_pb2.SERVICE_ORDER_STATE_IN_PROGRESS
                and w.status.steps_done == 0)

    await until(provisioning, "w-slow provisioning (its first step sent)", timeout=30)
