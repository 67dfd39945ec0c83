"""SetLinkAdminState against a real server, broker and worker: the link goes out of service as
an inventory change, the engine's reaction reroutes what crossed it, once per key."""

from __future__ import annotations

import grpc
import pytest
from api_itest_util import decider_log_size, details, order

from tandem.v1 import api_pb2, decision_pb2, inventory_pb2

D = decision_pb2
I = inventory_pb2
pytestmark = pytest.mark.integration


async def test_a_disabled_link_reroutes_what_crossed_it_once_per_key(api) -> None:  # type: ignore[no-untyped-def]
    placed = await api.stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
        workload=order("w-m"), idempotency_key="m"), timeout=60)
    crossed = {lid for p in placed.decision.paths for lid in p.link_ids}
    assert crossed == {"ams-fra"}, crossed
    call = api_pb2.SetLinkAdminStateRequest(link_id="ams-fra",
                                            admin_state=I.ADMIN_STATE_DISABLED,
                                            idempotency_key="down-1")
    reply = await api.stub.SetLinkAdminState(call, timeout=60)
    assert reply.link.link.admin_state == I.ADMIN_STATE_DISABLED
    assert reply.link.reservations == 0 and reply.link.reserved_ab_mbps == 0
    [moved] = [d for d in reply.decisions if d.workload_id == "w-m"]
    assert moved.kind in (D.DECISION_KIND_REROUTED, D.DECISION_KIND_MIGRATED,
                          D.DECISION_KIND_REROUTED_AND_MIGRATED), moved
    assert moved.paths and all("ams-fra" not in p.link_ids for p in moved.paths)
    got = await api.stub.GetWorkload(api_pb2.GetWorkloadRequest(workload_id="w-m"), timeout=10)
    assert got.workload.decision.meta.event_id == moved.meta.event_id
    topo = await api.stub.GetTopology(api_pb2.GetTopologyRequest(), timeout=10)
    [link] = [lv for lv in topo.links if lv.link.link_id == "ams-fra"]
    assert link.link.admin_state == I.ADMIN_STATE_DISABLED

    # The same key again: the same answer, nothing sent.
    size = await decider_log_size(api.bootstrap, api.prefix)
    again = await api.stub.SetLinkAdminState(call, timeout=60)
    assert [d.meta.event_id for d in again.decisions] == [d.meta.event_id for d in reply.decisions]
    assert await decider_log_size(api.bootstrap, api.prefix) == size
    # The same key for another change: ALREADY_EXISTS.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.stub.SetLinkAdminState(api_pb2.SetLinkAdminStateRequest(
            link_id="ams-fra", admin_state=I.ADMIN_STATE_ENABLED, idempotency_key="down-1"),
            timeout=30)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    # Back in service under a new key.
    up = await api.stub.SetLinkAdminState(api_pb2.SetLinkAdminStateRequest(
        link_id="ams-fra", admin_state=I.ADMIN_STATE_ENABLED, idempotency_key="up-1"),
        timeout=60)
    assert up.link.link.admin_state == I.ADMIN_STATE_ENABLED

    # Bad calls name their field; an unknown link is NOT_FOUND.
    for bad, field in ((api_pb2.SetLinkAdminStateRequest(
            link_id="ams-fra", admin_state=I.ADMIN_STATE_DISABLED), "idempotency_key"),
            (api_pb2.SetLinkAdminStateRequest(admin_state=I.ADMIN_STATE_DISABLED,
                                              idempotency_key="x"), "link_id"),
            (api_pb2.SetLinkAdminStateRequest(link_id="ams-fra", idempotency_key="x"),
             "admin_state")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.stub.SetLinkAdminState(bad, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        [br] = [d for d in details(err.value) if d.DESCRIPTOR.name == "BadRequest"]
        assert [v.field for v in br.field_violations] == [field]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.stub.SetLinkAdminState(api_pb2.SetLinkAdminStateRequest(
            link_id="atlantis", admin_state=I.ADMIN_STATE_DISABLED, idempotency_key="y"),
            timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_drained_site_has_its_groups_moved_and_can_come_back(api) -> None:  # type: ignore[no-untyped-def]
    placed = await api.stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
        workload=order("w-d"), idempotency_key="d"), timeout=60)
    assert "ams" in {p.site_id for p in placed.decision.placements}
    call = api_pb2.DrainSiteRequest(site_id="ams", idempotency_key="drain-ams")
    reply = await api.stub.DrainSite(call, timeout=60)
    assert reply.site.site.state == I.SITE_STATE_DRAINING
    [moved] = [d for d in reply.decisions if d.workload_id == "w-d"]
    assert moved.kind in (D.DECISION_KIND_MIGRATED, D.DECISION_KIND_REROUTED_AND_MIGRATED), moved
    assert "ams" not in {p.site_id for p in moved.placements}
    assert reply.site.workloads == 0
    # No new placement goes there while it drains.
    what = await api.stub.WhatIf(api_pb2.WhatIfRequest(workload=order("w-new")), timeout=10)
    assert "ams" not in {p.site_id for p in what.decision.placements}
    again = await api.stub.DrainSite(call, timeout=60)  # once per key
    assert [d.meta.event_id for d in again.decisions] == [moved.meta.event_id]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.stub.DrainSite(api_pb2.DrainSiteRequest(site_id="fra",
                                                          idempotency_key="drain-ams"), timeout=30)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    back = await api.stub.DrainSite(api_pb2.DrainSiteRequest(
        site_id="ams", idempotency_key="resume-ams", resume=True), timeout=60)
    assert back.site.site.state == I.SITE_STATE_ACTIVE
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.stub.DrainSite(api_pb2.DrainSiteRequest(site_id="atlantis",
                                                          idempotency_key="z"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
