"""The gRPC API against a real server on a socket, a real broker and a real worker."""

from __future__ import annotations

import asyncio
import math

import grpc
import pytest
from api_itest_util import decider_log_size, decisions, details, order

from tandem.v1 import api_pb2, decision_pb2
from tandem.v1 import workload_pb2 as W
from google.rpc import error_details_pb2

D = decision_pb2
pytestmark = pytest.mark.integration


async def test_whatif_answers_without_changing_anything(api) -> None:  # type: ignore[no-untyped-def]
    before = await decider_log_size(api.bootstrap, api.prefix)
    reply = await api.stub.WhatIf(api_pb2.WhatIfRequest(workload=order("w-what")), timeout=10)
    d = reply.decision
    assert d.kind == D.DECISION_KIND_PLACED and d.placements and d.paths
    assert d.explanation.summary and d.steps  # the worker's own path: explained, with steps
    infeasible = await api.stub.WhatIf(api_pb2.WhatIfRequest(
        workload=order("w-what-jp", jurisdiction="JP")), timeout=10)
    assert infeasible.decision.kind == D.DECISION_KIND_REJECTED
    assert infeasible.decision.rejection.constraint == "vm_jurisdiction"
    # Nothing was sent or committed: the log is as it was, no decision exists, and the server's
    # fold knows no workload.
    assert await decider_log_size(api.bootstrap, api.prefix) == before
    assert await decisions(api.bootstrap, api.prefix) == []
    listed = await api.stub.ListWorkloads(api_pb2.ListWorkloadsRequest(), timeout=10)
    assert list(listed.workloads) == []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.stub.GetWorkload(api_pb2.GetWorkloadRequest(workload_id="w-what"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_place_returns_the_decision_once_per_key(api) -> None:  # type: ignore[no-untyped-def]
    call = api_pb2.PlaceAndConnectRequest(workload=order("w1"), idempotency_key="k-1")
    first = await api.stub.PlaceAndConnect(call, timeout=30)
    d = first.decision
    assert d.kind == D.DECISION_KIND_PLACED and d.request_id == first.request_id
    # The very decision the decider published.
    published = await decisions(api.bootstrap, api.prefix)
    assert [p.SerializeToString(deterministic=True) for p in published] == [
        d.SerializeToString(deterministic=True)]
    # The same key again, in sequence and twice concurrently: the same answer, one decision.
    again = await api.stub.PlaceAndConnect(call, timeout=30)
    both = await asyncio.gather(*(api.stub.PlaceAndConnect(call, timeout=30) for _ in range(2)))
    for r in (again, *both):
        assert r.decision.meta.event_id == d.meta.event_id and r.request_id == first.request_id
    # A second distinct order gets its own decision (and proves the repeats were folded by now).
    other = await api.stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
        workload=order("w2"), idempotency_key="k-2"), timeout=30)
    published = await decisions(api.bootstrap, api.prefix)
    assert sorted(p.request_id for p in published) == sorted(
        [first.request_id, other.request_id])
    # The same key for another order: ALREADY_EXISTS, nothing sent.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
            workload=order("w1", bw=100), idempotency_key="k-1"), timeout=30)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    # The same key from another tenant is another request.
    third = await api.stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
        workload=order("w3", tenant="globex"), idempotency_key="k-1"), timeout=30)
    assert third.request_id != first.request_id

    got = await api.stub.GetWorkload(api_pb2.GetWorkloadRequest(workload_id="w1"), timeout=10)
    # No compute unit runs here: the executor sent the first step at most (no ACTIVE).
    assert got.workload.admitted and got.workload.phase in (D.WORKLOAD_PHASE_DECIDED,
                                                            D.WORKLOAD_PHASE_PROVISIONING)
    assert got.workload.decision.meta.event_id == d.meta.event_id
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.stub.GetWorkload(api_pb2.GetWorkloadRequest(workload_id="w1", tenant="globex"),
                                   timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    # Paged and filtered.
    page1 = await api.stub.ListWorkloads(api_pb2.ListWorkloadsRequest(tenant="acme", page_size=1),
                                         timeout=10)
    assert [w.workload_id for w in page1.workloads] == ["w1"] and page1.next_page_token
    page2 = await api.stub.ListWorkloads(api_pb2.ListWorkloadsRequest(
        tenant="acme", page_size=1, page_token=page1.next_page_token), timeout=10)
    assert [w.workload_id for w in page2.workloads] == ["w2"] and not page2.next_page_token
    site = d.placements[0].site_id
    on_site = await api.stub.ListWorkloads(api_pb2.ListWorkloadsRequest(site_id=site), timeout=10)
    assert "w1" in {w.workload_id for w in on_site.workloads}
    assert all(any(p.site_id == site for p in w.decision.placements) for w in on_site.workloads)

    topo = await api.stub.GetTopology(api_pb2.GetTopologyRequest(), timeout=10)
    assert {s.site.site_id for s in topo.sites} >= {p.site_id for p in d.placements}
    crossed = {lid for p in d.paths for lid in p.link_ids}
    assert all(lv.reservations >= 1 and lv.reserved_ab_mbps + lv.reserved_ba_mbps > 0
               for lv in topo.links if lv.link.link_id in crossed)

    # Release: the decision, once; then the workload is released and not admitted.
    rel = api_pb2.ReleaseWorkloadRequest(release=W.ReleaseRequest(tenant="acme", workload_id="w1"),
                                         idempotency_key="rel-1")
    out = await api.stub.Release(rel, timeout=30)
    assert out.decision.kind == D.DECISION_KIND_RELEASED
    assert (await api.stub.Release(rel, timeout=30)).decision.meta.event_id == \
        out.decision.meta.event_id
    got = await api.stub.GetWorkload(api_pb2.GetWorkloadRequest(workload_id="w1"), timeout=10)
    assert not got.workload.admitted and got.workload.phase == D.WORKLOAD_PHASE_RELEASED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.stub.Release(api_pb2.ReleaseWorkloadRequest(
            release=W.ReleaseRequest(tenant="acme", workload_id="w1"), idempotency_key="rel-2"),
            timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_infeasible_order_is_failed_precondition_with_the_explanation(api) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
            workload=order("w-jp", jurisdiction="JP"), idempotency_key="jp"), timeout=30)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "vm_jurisdiction" in (err.value.details() or "")
    info = [x for x in details(err.value) if isinstance(x, error_details_pb2.ErrorInfo)]
    assert info and info[0].reason == "REJECTED_VM_JURISDICTION"
    rejected = [x for x in details(err.value) if isinstance(x, D.Decision)]
    assert rejected and rejected[0].kind == D.DECISION_KIND_REJECTED
    assert rejected[0].explanation.summary
    got = await api.stub.GetWorkload(api_pb2.GetWorkloadRequest(workload_id="w-jp"), timeout=10)
    assert got.workload.phase == D.WORKLOAD_PHASE_REJECTED and not got.workload.admitted


def _bad(field: str, err: grpc.aio.AioRpcError) -> None:
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    fields = [v.field for x in details(err) if isinstance(x, error_details_pb2.BadRequest)
              for v in x.field_violations]
    assert field in fields, (field, fields, err.details())


async def test_bad_fields_are_invalid_argument_naming_the_field(api) -> None:  # type: ignore[no-untyped-def]
    def place(w: W.WorkloadRequest, key: str = "k") -> api_pb2.PlaceAndConnectRequest:
        return api_pb2.PlaceAndConnectRequest(workload=w, idempotency_key=key)

    zero = order("w-bad")
    zero.groups[0].count = 0
    nan = order("w-bad")
    nan.demands[0].bandwidth_mbps = math.nan
    huge = order("w-bad")
    huge.demands[0].bandwidth_mbps = 1e12
    nowhere = order("w-bad")
    nowhere.demands[0].ClearField("to_group")
    nowhere.demands[0].to_site = "atlantis"
    no_tenant = order("w-bad", tenant="")
    cases = [
        ("idempotency_key", place(order("w-bad"), key="")),
        ("workload.tenant", place(no_tenant)),
        ("workload.groups[0].count", place(zero)),
        ("workload.demands[0].bandwidth_mbps", place(nan)),
        ("workload.demands[0].bandwidth_mbps", place(huge)),
        ("workload.demands[0].to_site", place(nowhere)),
        ("workload", api_pb2.PlaceAndConnectRequest(idempotency_key="k")),
    ]
    for field, call in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.stub.PlaceAndConnect(call, timeout=10)
        _bad(field, err.value)
        if field == "idempotency_key":
            continue  # WhatIf takes none
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.stub.WhatIf(api_pb2.WhatIfRequest(workload=call.workload)
                                  if call.HasField("workload") else api_pb2.WhatIfRequest(),
                                  timeout=10)
        _bad(field, err.value)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.stub.ListWorkloads(api_pb2.ListWorkloadsRequest(page_token="nonsense"),
                                     timeout=10)
    _bad("page_token", err.value)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.stub.Release(api_pb2.ReleaseWorkloadRequest(
            release=W.ReleaseRequest(tenant="acme"), idempotency_key="r"), timeout=10)
    _bad("release.workload_id", err.value)
    # None of it reached Kafka.
    assert await decisions(api.bootstrap, api.prefix) == []


async def test_health_and_reflection_answer(api) -> None:  # type: ignore[no-untyped-def]
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    health = health_pb2_grpc.HealthStub(api.channel)
    for service in ("", "tandem.v1.Tandem"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(api.channel)

    async def ask(req: reflection_pb2.ServerReflectionRequest) -> reflection_pb2.ServerReflectionResponse:
        async for resp in refl.ServerReflectionInfo(iter([req]), timeout=10):
            return resp
        raise AssertionError("no reflection answer")

    listed = await ask(reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in listed.list_services_response.service}
    assert {"tandem.v1.Tandem", "grpc.health.v1.Health"} <= names
    files = await ask(reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="tandem.v1.Tandem"))
    assert files.file_descriptor_response.file_descriptor_proto
