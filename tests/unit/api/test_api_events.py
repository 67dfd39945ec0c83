"""Pure parts of WatchEvents: positions, kinds, decoding and the site and tenant filters."""

from __future__ import annotations

import pytest

from tandem.services.api import events
from tandem.services.api.errors import BadRequest
from tandem.v1 import alarms_pb2, api_pb2, decision_pb2, link_state_pb2, telemetry_pb2

D = decision_pb2
LINKS = {"ams-fra": frozenset({"ams", "fra"}), "par-lon": frozenset({"par", "lon"})}
WORKLOADS = {"w1": ("acme", frozenset({"ams"})), "w2": ("globex", frozenset({"par"}))}
LOOKUP = events.Lookup(
    tenant_of=lambda w: WORKLOADS.get(w, ("", frozenset()))[0],
    sites_of=lambda w: WORKLOADS.get(w, ("", frozenset()))[1],
    ends_of=lambda lid: LINKS.get(lid, frozenset()),
    kind_of=lambda w, d: D.DECISION_KIND_PLACED)


def test_a_position_round_trips_and_a_foreign_token_names_the_field() -> None:
    offs = {("tandem.decisions", 0): 3, ("tandem.telemetry", 5): 0}
    assert events.decode_position(events.encode_position(offs)) == offs
    assert events.decode_position("") == {}
    for bad in ("nonsense", events.encode_position({("tandem.requests", 0): 1}), "cDE6e30x"):
        with pytest.raises(BadRequest) as err:
            events.decode_position(bad)
        assert err.value.violations[0][0] == "position"


def test_kinds_default_to_all_and_reject_unknown_values() -> None:
    assert events.kinds_of(api_pb2.WatchEventsRequest()) == sorted(events.TOPICS)
    with pytest.raises(BadRequest):
        events.kinds_of(api_pb2.WatchEventsRequest(kinds=[0]))


def _ev(**kw: object) -> api_pb2.WatchEvent:
    return api_pb2.WatchEvent(**kw)  # type: ignore[arg-type]


def test_filters_by_tenant_and_site() -> None:
    d1 = D.Decision(workload_id="w1", tenant="acme", placements=[D.GroupPlacement(site_id="ams")])
    d2 = D.Decision(workload_id="w2", tenant="globex", placements=[D.GroupPlacement(site_id="par")],
                    paths=[D.PathReservation(link_ids=["ams-fra"])])
    st2 = D.WorkloadStatus(workload_id="w2", tenant="globex")
    al1 = alarms_pb2.Alarm(workload_id="w1", text="x")
    al_link = alarms_pb2.Alarm(link_id="par-lon")
    ls = link_state_pb2.LinkStateEvent(link_id="ams-fra")
    util = telemetry_pb2.LinkSample(link_id="par-lon")
    m = events.matches
    assert m(_ev(decision=d1), "", "acme", LOOKUP) and not m(_ev(decision=d2), "", "acme", LOOKUP)
    assert m(_ev(decision=d2), "fra", "", LOOKUP)  # its path crosses ams-fra
    assert not m(_ev(decision=d1), "par", "", LOOKUP)
    assert m(_ev(status=st2), "par", "globex", LOOKUP) and not m(_ev(status=st2), "ams", "", LOOKUP)
    assert m(_ev(alarm=al1), "ams", "acme", LOOKUP) and not m(_ev(alarm=al1), "", "globex", LOOKUP)
    assert not m(_ev(alarm=al_link), "", "acme", LOOKUP)  # names no workload of acme
    assert m(_ev(alarm=al_link), "lon", "", LOOKUP)
    assert m(_ev(link_state=ls), "fra", "acme", LOOKUP) and not m(_ev(link_state=ls), "par", "", LOOKUP)
    assert m(_ev(utilisation=util), "par", "", LOOKUP) and not m(_ev(utilisation=util), "ams", "", LOOKUP)


def test_decode_keeps_link_samples_only_and_skips_garbage() -> None:
    link = telemetry_pb2.TelemetrySample(link=telemetry_pb2.LinkSample(link_id="a", utilisation_mbps=5))
    site = telemetry_pb2.TelemetrySample(site=telemetry_pb2.SiteSample(site_id="ams"))
    ev = events.decode("tandem.telemetry", link.SerializeToString())
    assert ev is not None and ev.kind == api_pb2.EVENT_KIND_UTILISATION
    assert ev.utilisation.utilisation_mbps == 5
    assert events.decode("tandem.telemetry", site.SerializeToString()) is None
    assert events.decode("tandem.decisions", b"\xff\xff") is None
    st = D.WorkloadStatus(workload_id="w1", phase=D.WORKLOAD_PHASE_ACTIVE)
    ev = events.decode("tandem.workload-status", st.SerializeToString())
    assert ev is not None
    events.annotate(ev, LOOKUP)
    assert ev.order_state == api_pb2.SERVICE_ORDER_STATE_COMPLETED
