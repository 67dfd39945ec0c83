"""Pure parts of the gRPC API: request ids and digests, field names, paging, phases, the
status an error is answered with, and what-if on a scratch copy of the decider."""

from __future__ import annotations

import time

import pytest
from google.rpc import code_pb2, error_details_pb2

from tandem.decider import Decider
from tandem.events import new_meta
from tandem.services.api import convert
from tandem.services.api.errors import BadRequest, Infeasible, NotFound, Unavailable
from tandem.services.api.interceptor import status_of
from tandem.services.api.whatif import scratch
from tandem.services.demo_data import demo_federation, web_db_order
from tandem.v1 import api_pb2, decision_pb2
from tandem.v1 import workload_pb2 as W
from tandem.validation import InvalidEvent

D = decision_pb2


def order(wid: str = "w1", tenant: str = "acme", bw: float = 300.0,
          jurisdiction: str = "EU") -> W.WorkloadRequest:
    return web_db_order(wid, tenant, bw, jurisdiction)


def federated() -> Decider:
    d = Decider()
    for ev in demo_federation():
        out = d.admit("inventory", ev.SerializeToString(), time.time())
        assert out.outputs.invalid is None
    return d


def request(rid: str, w: W.WorkloadRequest) -> W.RequestEvent:
    return W.RequestEvent(meta=new_meta("test", correlation_id=rid), request_id=rid, place=w)


def test_request_id_depends_on_tenant_and_key() -> None:
    a = convert.request_id_for("acme", "k1")
    assert a == convert.request_id_for("acme", "k1")
    assert a != convert.request_id_for("globex", "k1") != convert.request_id_for("acme", "k2")


def test_order_digest_is_the_one_the_decider_stores() -> None:
    d = federated()
    ev = request("r1", order())
    assert d.admit("request", ev.SerializeToString(), time.time()).outputs.decisions
    assert d.requests_answered["r1"][1] == convert.order_digest(ev)
    assert convert.order_digest(request("r1", order(bw=1))) != convert.order_digest(ev)


@pytest.mark.parametrize("detail, field, reworded", [
    ("request.place.groups[0].count = 0", "workload.groups[0].count", "workload.groups[0].count = 0"),
    ("place.demands[1].to_site = 'x': no such site", "workload.demands[1].to_site",
     "workload.demands[1].to_site = 'x': no such site"),
    ("request_id: empty", "idempotency_key", "idempotency_key: empty"),
    ("release.workload_id: empty", "release.workload_id", "release.workload_id: empty"),
    ("meta.time = 1.0 lies before 2000", "", "meta.time = 1.0 lies before 2000"),
    ("payload decodes to nothing", "payload", "payload decodes to nothing"),
])
def test_field_of_names_the_api_field(detail: str, field: str, reworded: str) -> None:
    assert convert.field_of(detail) == (field, reworded)


def test_api_rules_on_orders() -> None:
    with pytest.raises(BadRequest) as bad:
        convert.check_place(api_pb2.PlaceAndConnectRequest(workload=order(tenant="", wid="")),
                            need_key=True)
    assert [f for f, _ in bad.value.violations] == ["idempotency_key", "workload.tenant",
                                                    "workload.workload_id"]
    with pytest.raises(BadRequest) as bad:
        convert.check_place(api_pb2.PlaceAndConnectRequest(idempotency_key="x" * 201,
                                                           workload=order()), need_key=True)
    assert bad.value.violations[0][0] == "idempotency_key"
    convert.check_place(api_pb2.WhatIfRequest(workload=order()), need_key=False)
    with pytest.raises(BadRequest) as bad:
        convert.check_release(api_pb2.ReleaseWorkloadRequest(idempotency_key="k"))
    assert [f for f, _ in bad.value.violations] == ["release.tenant", "release.workload_id"]


def _decision(wid: str, kind: int, tenant: str = "acme", site: str = "ams",
              link: str = "l1") -> D.Decision:
    return D.Decision(workload_id=wid, tenant=tenant, kind=kind,  # type: ignore[arg-type]
                      placements=[D.GroupPlacement(group_id="g", site_id=site, count=1)],
                      paths=[D.PathReservation(link_ids=[link])])


def test_pages_are_ordered_filtered_and_chained() -> None:
    latest = {f"w{i}": _decision(f"w{i}", D.DECISION_KIND_PLACED, site="ams" if i % 2 else "fra")
              for i in range(5)}
    latest["w9"] = _decision("w9", D.DECISION_KIND_RELEASED, tenant="globex", site="par",
                              link="l2")
    admitted = {f"w{i}" for i in range(5)}
    seen: list[str] = []
    token = ""
    while True:
        got, token = convert.page(api_pb2.ListWorkloadsRequest(page_size=2, page_token=token),
                                  latest, admitted)
        seen += [w.workload_id for w in got]
        if not token:
            break
    assert seen == ["w0", "w1", "w2", "w3", "w4", "w9"]
    got, _ = convert.page(api_pb2.ListWorkloadsRequest(site_id="ams"), latest, admitted)
    assert [w.workload_id for w in got] == ["w1", "w3"]
    got, _ = convert.page(api_pb2.ListWorkloadsRequest(
        phases=[D.WORKLOAD_PHASE_RELEASED]), latest, admitted)
    assert [(w.workload_id, w.admitted) for w in got] == [("w9", False)]
    got, _ = convert.page(api_pb2.ListWorkloadsRequest(tenant="acme", link_id="l1"), latest,
                          admitted)
    assert len(got) == 5 and all(w.admitted and w.phase == D.WORKLOAD_PHASE_DECIDED for w in got)
    for bad in (api_pb2.ListWorkloadsRequest(page_token="bogus"),
                api_pb2.ListWorkloadsRequest(page_size=5000),
                api_pb2.ListWorkloadsRequest(phases=[77])):
        with pytest.raises(BadRequest):
            convert.page(bad, latest, admitted)


def test_status_codes_and_details() -> None:
    st = status_of(InvalidEvent("out_of_range", "request.place.demands[0].bandwidth_mbps = nan"))
    assert st.code == code_pb2.INVALID_ARGUMENT
    br = error_details_pb2.BadRequest()
    assert st.details[0].Unpack(br)
    assert br.field_violations[0].field == "workload.demands[0].bandwidth_mbps"
    rejected = D.Decision(workload_id="w", kind=D.DECISION_KIND_REJECTED,
                          rejection=D.Rejection(constraint="latency", detail="too far"))
    st = status_of(Infeasible(rejected))
    assert st.code == code_pb2.FAILED_PRECONDITION and "too far" in st.message
    info = error_details_pb2.ErrorInfo()
    assert st.details[0].Unpack(info) and info.reason == "REJECTED_LATENCY"
    back = D.Decision()
    assert st.details[1].Unpack(back) and back == rejected
    assert status_of(NotFound("x")).code == code_pb2.NOT_FOUND
    assert status_of(Unavailable("x")).code == code_pb2.UNAVAILABLE
    assert status_of(RuntimeError("bug")).code == code_pb2.INTERNAL
    assert status_of(InvalidEvent("processing_error", "boom")).code == code_pb2.INTERNAL


def test_what_if_on_a_scratch_copy_changes_nothing() -> None:
    d = federated()
    first = d.admit("request", request("r0", order("w0")).SerializeToString(), time.time())
    assert first.outputs.decisions[0].kind == D.DECISION_KIND_PLACED
    state, blocks = d.state, (dict(d.blocks.owned), set(d.blocks.used))
    answered, folded, count = dict(d.requests_answered), dict(d.inputs_folded), d.count
    probe = request("whatif-1", order("w1"))
    now = time.time()
    got = scratch(d).admit("request", probe.SerializeToString(), now)
    assert got.outputs.decisions[0].kind == D.DECISION_KIND_PLACED
    assert d.state is state and (dict(d.blocks.owned), set(d.blocks.used)) == blocks
    assert d.requests_answered == answered and d.inputs_folded == folded and d.count == count
    # ... and the scratch copy decided as the decider itself would.
    real = d.admit("request", probe.SerializeToString(), now)
    assert got.outputs.decisions[0] == real.outputs.decisions[0]


def test_topology_view_counts_reservations() -> None:
    d = federated()
    out = d.admit("request", request("r0", order("w0")).SerializeToString(), time.time())
    dec = out.outputs.decisions[0]
    sites, links = convert.topology_view(d.topology, d.state)
    assert {s.site.site_id for s in sites} == set(d.topology.sites)
    crossed = {lid for p in dec.paths for lid in p.link_ids}
    for lv in links:
        if lv.link.link_id in crossed:
            assert lv.reservations == 1 and lv.reserved_ab_mbps + lv.reserved_ba_mbps >= 300
            assert 0 < max(lv.reserved_fraction_ab, lv.reserved_fraction_ba) <= 1
        else:
            assert lv.reservations == 0
    used = {s.site.site_id: s.used.vcpus for s in sites}
    assert sum(used.values()) == 12  # 2 x 4 + 1 x 4 vCPUs
    sites0, links0 = convert.topology_view(federated().topology, None)
    assert all(lv.reservations == 0 for lv in links0) and len(sites0) == len(sites)


def test_what_if_lends_the_address_blocks_and_gives_them_back_unchanged() -> None:
    from tandem.services.api.view import DeciderView

    d = federated()
    for i in range(3):
        d.admit("request", request(f"r{i}", order(f"w{i}")).SerializeToString(), time.time())
    view = DeciderView("unused:0")
    view.decider = d
    before = (dict(d.blocks.owned), set(d.blocks.used))
    probe = request("whatif-9", order("w9"))
    now = time.time()
    got = view.what_if(probe, now)
    assert got.kind == D.DECISION_KIND_PLACED
    assert (dict(d.blocks.owned), set(d.blocks.used)) == before
    # A rejected what-if (its fold allocates nothing) and an invalid one give them back too.
    assert view.what_if(request("whatif-jp", order("wjp", jurisdiction="JP")), now).kind == \
        D.DECISION_KIND_REJECTED
    with pytest.raises(InvalidEvent):
        bad = order("wbad")
        bad.groups[0].count = 0
        view.what_if(request("whatif-bad", bad), now)
    assert (dict(d.blocks.owned), set(d.blocks.used)) == before
    # The same decision, addresses included, as the decider itself then takes.
    real = d.admit("request", probe.SerializeToString(), now)
    assert real.outputs.decisions[0] == got
