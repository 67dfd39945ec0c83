"""Decoding and validation: every kind of bad input is named, never raised as a crash."""

from __future__ import annotations

import math
import time

import pytest

from tandem.events import new_meta
from tandem.inventory import check_inventory, inventory_key
from tandem.v1 import inventory_pb2 as K
from tandem.v1 import telemetry_pb2
from tandem.validation import (
    INVALID, OUT_OF_RANGE, UNDECODABLE, UNKNOWN_REFERENCE, UNKNOWN_SCHEMA_VERSION,
    InvalidEvent, check_meta, check_ranges, decode,
)


def site_event(**kw: object) -> K.InventoryEvent:
    return K.InventoryEvent(meta=new_meta("test"), site=K.Site(site_id="ams", **kw))


def link_event(a: str = "ams", b: str = "fra", **kw: object) -> K.InventoryEvent:
    return K.InventoryEvent(meta=new_meta("test"),
                            link=K.Link(link_id="l1", site_a=a, site_b=b, **kw))


@pytest.mark.parametrize("payload", [b"", b"\xff\xff\xff", b"\x0a\x05ab"])
def test_garbage_is_undecodable(payload: bytes) -> None:
    with pytest.raises(InvalidEvent) as err:
        decode(K.InventoryEvent, payload)
    assert err.value.reason == UNDECODABLE
    assert "InventoryEvent" in err.value.detail


def test_roundtrip_decodes() -> None:
    ev = site_event(name="Amsterdam")
    assert decode(K.InventoryEvent, ev.SerializeToString()) == ev


def test_unknown_schema_version_is_named() -> None:
    ev = site_event()
    ev.meta.schema_version = 99
    with pytest.raises(InvalidEvent) as err:
        check_meta(ev)
    assert err.value.reason == UNKNOWN_SCHEMA_VERSION
    assert "99" in err.value.detail


def test_missing_meta_and_future_time() -> None:
    with pytest.raises(InvalidEvent) as err:
        check_meta(K.InventoryEvent(site=K.Site(site_id="x")))
    assert err.value.reason == INVALID
    ev = site_event()
    ev.meta.time.seconds = int(time.time()) + 3600
    with pytest.raises(InvalidEvent) as err:
        check_meta(ev)
    assert err.value.reason == OUT_OF_RANGE and "future" in err.value.detail


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"capacity_ab_mbps": -5.0}, "link.capacity_ab_mbps"),
        ({"latency_ms": math.nan}, "link.latency_ms"),
        ({"loss": 1.5}, "link.loss"),
        ({"cost_per_mbps": math.inf}, "link.cost_per_mbps"),
    ],
)
def test_out_of_range_names_the_field(kw: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        check_ranges(link_event(**kw))
    assert err.value.reason == OUT_OF_RANGE
    assert err.value.detail.startswith(field)


def test_nested_and_repeated_values_are_checked() -> None:
    ev = site_event()
    ev.site.location.latitude = 123.0
    with pytest.raises(InvalidEvent, match="site.location.latitude"):
        check_ranges(ev)
    sample = telemetry_pb2.TelemetrySample(meta=new_meta("t"))
    sample.link.utilisation_mbps = -1
    with pytest.raises(InvalidEvent, match="link.utilisation_mbps"):
        check_ranges(sample)


def test_link_to_unknown_site_is_an_unknown_reference() -> None:
    with pytest.raises(InvalidEvent) as err:
        check_inventory(link_event(), known_sites={"ams"})
    assert err.value.reason == UNKNOWN_REFERENCE
    assert "site_b" in err.value.detail and "fra" in err.value.detail
    check_inventory(link_event(), known_sites={"ams", "fra"})  # passes


def test_self_loop_and_empty_ids_are_invalid() -> None:
    with pytest.raises(InvalidEvent, match="two different sites"):
        check_inventory(link_event("ams", "ams"), known_sites={"ams"})
    with pytest.raises(InvalidEvent, match="site_id"):
        check_inventory(K.InventoryEvent(meta=new_meta("t"), site=K.Site(name="x")), known_sites=())


def test_inventory_keys() -> None:
    assert inventory_key(site_event()) == "site/ams"
    assert inventory_key(link_event()) == "link/l1"
    removed = K.InventoryEvent(meta=new_meta("t"),
                               removed=K.ElementRemoved(kind=K.ElementRemoved.KIND_LINK, id="l1"))
    assert inventory_key(removed) == "link/l1"


def test_lldp_observations_are_keyed_checked_and_alarmed() -> None:
    from tandem.inventory import observation_alarm

    obs = K.LinkObservation(observer_site="ams", datapath_id=1, port_no=3, link_id="l1",
                            status=K.LinkObservation.STATUS_MISWIRED, peer_site="waw",
                            peer_port_no=2, expected_peer_site="ber", expected_peer_port_no=4)
    ev = K.InventoryEvent(meta=new_meta("t"), observed=obs)
    assert inventory_key(ev) == "observed/ams/1/3"
    check_inventory(ev, known_sites={"ams"})
    with pytest.raises(InvalidEvent) as err:
        check_inventory(ev, known_sites={"ber"})
    assert err.value.reason == UNKNOWN_REFERENCE
    raised = observation_alarm(obs, None)
    assert raised is not None and not raised[0] and "miswired" in raised[1]
    assert observation_alarm(obs, obs) is None  # no news, no alarm
    ok = K.LinkObservation(observer_site="ams", link_id="l1", status=K.LinkObservation.STATUS_OK)
    assert observation_alarm(ok, obs) == (True, "link l1 seen as declared again from ams")
    assert observation_alarm(ok, None) is None


@pytest.mark.parametrize("kw,field", [
    ({"capacity_ab_mbps": 1e308}, "capacity_ab_mbps"),  # passed as "non-negative" before
    ({"latency_ms": 1e9}, "latency_ms"),
    ({"cost_per_mbps": 1e300}, "cost_per_mbps"),
])
def test_physical_upper_bounds(kw: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        check_ranges(link_event(**kw))
    assert err.value.reason == OUT_OF_RANGE and field in err.value.detail


def test_enum_values_the_schema_does_not_define_are_refused() -> None:
    ev = link_event()
    ev.link.kind = 42  # type: ignore[assignment]
    with pytest.raises(InvalidEvent) as err:
        check_ranges(ev)
    assert err.value.reason == OUT_OF_RANGE and "link.kind = 42" in err.value.detail


def test_absurd_strings_lists_and_timestamps_are_refused() -> None:
    with pytest.raises(InvalidEvent, match="characters"):
        check_ranges(site_event(name="x" * 5000))
    with pytest.raises(InvalidEvent, match="entries"):
        check_ranges(site_event(hypervisors=["kvm"] * 20_000))
    ev = link_event()
    w = ev.link.capacity_schedule.add(capacity_mbps=10)
    w.start.seconds = 10**11  # year 5138
    with pytest.raises(InvalidEvent, match="capacity_schedule"):
        check_ranges(ev)


def test_event_time_before_2000_is_a_broken_clock() -> None:
    ev = site_event()
    ev.meta.time.seconds = 5
    with pytest.raises(InvalidEvent) as err:
        check_meta(ev)
    assert err.value.reason == OUT_OF_RANGE and "before 2000" in err.value.detail


def test_oversized_payloads_are_refused_before_decoding() -> None:
    from tandem.validation import MAX_RECORD_BYTES, TOO_LARGE

    with pytest.raises(InvalidEvent) as err:
        decode(K.InventoryEvent, b"\x0a" * (MAX_RECORD_BYTES + 1))
    assert err.value.reason == TOO_LARGE
