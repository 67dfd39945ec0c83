"""Events built from a transition: derived ids (re-folding yields the same events)."""

from __future__ import annotations

from tandem.streams.agents.telemetry import link_metrics, transition_events
from tandem.telemetry import DEGRADED, UP, LinkTracker, Params, band_of
from tandem.v1 import alarms_pb2, inventory_pb2, link_state_pb2 as L

LINK = inventory_pb2.Link(link_id="ab", site_a="a", site_b="b", capacity_ab_mbps=100,
                          capacity_ba_mbps=100, latency_ms=10)
P = Params(tau_s=1, degrade_hold_s=2, degrade_samples=2, recover_hold_s=2, recover_samples=2)


def run() -> list[tuple[L.LinkStateEvent, alarms_pb2.Alarm]]:
    tr = LinkTracker(band_of(LINK, P), P)
    out = []
    for i in range(40):
        t = tr.observe("a", 1000.0 + i, 1.0, 50.0 if i < 20 else 10.0, 0.05 if i < 20 else 0.0)
        if t:
            out.append(transition_events(t))
    return out


def test_transition_events_are_deterministic() -> None:
    a, b = run(), run()
    assert [x[0].state for x in a] == [L.OPER_STATE_DEGRADED, L.OPER_STATE_UP]
    assert [x[0].meta.event_id for x in a] == [x[0].meta.event_id for x in b]
    assert [x[1].meta.event_id for x in a] == [x[1].meta.event_id for x in b]
    deg, alarm = a[0]
    assert deg.degradation.metric in ("latency_ms", "loss")
    assert deg.meta.time.seconds >= 1002 and alarm.cleared is False
    assert a[1][1].cleared is True and a[1][0].cause.startswith("telemetry: ")


def test_link_metrics_value() -> None:
    tr = LinkTracker(band_of(LINK, P), P)
    for i in range(10):
        tr.observe("b", float(i), 5.0, 40.0, 0.0)
    m = link_metrics(tr)
    assert m.state == L.OPER_STATE_DEGRADED and tr.state == DEGRADED
    assert m.degradation.metric == "latency_ms" and m.degradation.threshold == 15.0
    [d] = m.directions
    assert d.from_site == "b" and d.samples == 10 and d.has_latency and d.last_sample_time == 9.0
    assert UP != DEGRADED
