"""Smoothing, SLA bands and hysteresis of tandem.telemetry (pure)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tandem.telemetry import (CAPACITY, DEGRADED, LATENCY, LOSS, UP, Ewma, LinkTracker, Params,
                              PortCounter, SiteTracker, alpha, band_of)
from tandem.v1 import inventory_pb2

LINK = inventory_pb2.Link(link_id="ab", site_a="a", site_b="b", capacity_ab_mbps=1000,
                          capacity_ba_mbps=500, latency_ms=20, loss=0.001)
FAST = Params(tau_s=1.0, degrade_hold_s=3.0, degrade_samples=3, recover_hold_s=6.0,
              recover_samples=3)


def tracker(p: Params = FAST) -> LinkTracker:
    return LinkTracker(band_of(LINK, p), p)


def test_band_from_inventory() -> None:
    b = band_of(LINK, Params())
    assert b.latency_outer == 30.0  # max(20 * 1.5, 20 + 5)
    assert b.latency_inner == pytest.approx(20 + 0.8 * 10)
    assert b.loss_outer == pytest.approx(0.011)
    assert b.util_outer == {"a": 950.0, "b": 475.0}
    small = band_of(inventory_pb2.Link(link_id="x", site_a="a", site_b="b", latency_ms=2),
                    Params())
    assert small.latency_outer == 7.0  # the margin wins on short links


def test_ewma_time_constant() -> None:
    e = Ewma()
    e.update(0.0, 0.0, 10.0)
    e.update(100.0, 10.0, 10.0)  # one time constant later: 63 % of the step
    assert e.value == pytest.approx(100 * (1 - math.exp(-1)))
    before = e.value
    e.update(1e6, 10.0, 10.0)  # same instant (a redelivery): no weight
    e.update(1e6, 5.0, 10.0)  # late: no weight
    assert e.value == before
    assert alpha(0, 1) == 0 and 0 < alpha(1e-9, 10) < 1e-9


def test_degrades_after_hold_and_recovers_after_longer_hold() -> None:
    tr = tracker()
    out = []
    for i in range(40):  # latency 100 ms from t=0 on (both directions)
        for s in ("a", "b"):
            t = tr.observe(s, float(i), 100, 100.0, 0.0)
            if t:
                out.append(t)
    assert [t.state for t in out] == [DEGRADED]
    d = out[0]
    assert d.finding is not None and d.finding.metric == LATENCY
    assert d.finding.threshold == 30.0 and d.finding.observed > 30.0
    assert d.effective_ab_mbps == 1000.0 and d.effective_ba_mbps == 500.0
    # Violating from about t=0 (EWMA crosses 30 quickly); needs 3 s and 3 samples.
    assert 3.0 <= d.at <= 5.0
    out.clear()
    for i in range(40, 80):
        for s in ("a", "b"):
            t = tr.observe(s, float(i), 100, 20.0, 0.0)
            if t:
                out.append(t)
    assert [t.state for t in out] == [UP]
    assert out[0].at - 40 >= 6.0 and tr.state == UP


def test_between_bands_does_not_recover() -> None:
    tr = tracker()
    for i in range(30):
        tr.observe("a", float(i), 10, 100.0, 0.0)
    assert tr.state == DEGRADED
    # 29 ms: inside the outer band (30) but outside the inner one (28): stays degraded.
    for i in range(30, 200):
        assert tr.observe("a", float(i), 10, 29.0, 0.0) is None
    assert tr.state == DEGRADED


def test_loss_and_capacity_findings() -> None:
    tr = tracker()
    for i in range(20):
        tr.observe("b", float(i), 490.0, 20.0, 0.0)  # 490 of 500 Mbps > 95 %
    assert tr.state == DEGRADED and tr.finding is not None
    assert tr.finding.metric == CAPACITY and tr.finding.from_site == "b"
    tr2 = tracker()
    trans = [tr2.observe("a", float(i), 10.0, 20.0, 0.2) for i in range(20)]
    d = [t for t in trans if t][0]
    assert d.finding is not None and d.finding.metric == LOSS
    assert d.effective_ab_mbps == pytest.approx(1000 * 0.8)


def test_hold_needs_samples_too() -> None:
    p = Params(tau_s=0.1, degrade_hold_s=1.0, degrade_samples=5)
    tr = LinkTracker(band_of(LINK, p), p)
    assert tr.observe("a", 0.0, 1, 100.0, 0) is None
    assert tr.observe("a", 100.0, 1, 100.0, 0) is None  # 100 s but only 2 samples
    for i in range(2):
        assert tr.observe("a", 101.0 + i, 1, 100.0, 0) is None
    assert tr.observe("a", 103.0, 1, 100.0, 0) is not None


def test_unknown_direction_and_rebase() -> None:
    tr = tracker()
    with pytest.raises(KeyError):
        tr.observe("zz", 0.0, 1, 1, 0)
    for i in range(10):
        tr.observe("a", float(i), 900.0, 20.0, 0.0)
    assert tr.state == UP  # 900 of 1000 Mbps: inside the band
    smaller = inventory_pb2.Link()
    smaller.CopyFrom(LINK)
    smaller.capacity_ab_mbps = 500  # the inventory changed: same values, new band
    tr.rebase(band_of(smaller, FAST))
    for i in range(10, 20):
        tr.observe("a", float(i), 900.0, 20.0, 0.0)
    assert tr.state == DEGRADED and tr.finding is not None and tr.finding.metric == CAPACITY


def test_deterministic() -> None:
    def run() -> list[tuple[str, float]]:
        tr = tracker()
        out = []
        for i in range(300):
            t = tr.observe("ab"[i % 2], i * 0.5, 10.0, 20.0 + 40.0 * ((i // 37) % 2), 0.0)
            if t:
                out.append((t.state, t.at))
        return out

    a = run()
    assert a and a == run()


def test_site_tracker_and_port_counter() -> None:
    s = SiteTracker()
    s.observe(0.0, 10.0, 20.0, 30.0, tau=1.0)
    s.observe(1.0, 20.0, 20.0, 30.0, tau=1.0)
    assert 10.0 < s.vcpus.value < 20.0 and s.samples == 2
    pc = PortCounter()
    assert pc.update(0, 0, 0, 10.0) is None  # first: baseline only
    mbps, loss = pc.update(125_000_000, 900, 100, 11.0) or (0, 0)
    assert mbps == pytest.approx(1000.0) and loss == pytest.approx(0.1)
    assert pc.update(0, 0, 0, 1.0) is None  # counters reset: re-baseline
    assert pc.update(1_250_000, 10, 0, 2.0) == pytest.approx((10.0, 0.0))


@settings(max_examples=60, deadline=None)
@given(
    period=st.floats(0.2, 5.0),
    amplitude=st.floats(0.5, 40.0),
    dt=st.floats(0.05, 2.0),
    n=st.integers(50, 400),
    hold=st.floats(1.0, 20.0),
)
def test_oscillation_flaps_at_most_once_per_hold(period: float, amplitude: float, dt: float,
                                                 n: int, hold: float) -> None:
    """A metric oscillating around the threshold: transitions are at least a hold apart."""
    p = Params(tau_s=1.0, degrade_hold_s=hold, degrade_samples=2, recover_hold_s=hold,
               recover_samples=2)
    tr = LinkTracker(band_of(LINK, p), p)
    times = []
    for i in range(n):
        t = i * dt
        lat = 30.0 + amplitude * math.sin(2 * math.pi * t / period)
        tr_ = tr.observe("a", t, 1.0, lat, 0.0)
        if tr_:
            times.append(tr_.at)
    for earlier, later in zip(times, times[1:]):
        assert later - earlier >= hold
    assert len(times) <= 1 + (n * dt) / hold


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 200), st.floats(0, 1)), min_size=1,
                max_size=200))
def test_any_sequence_alternates_states(values: list[tuple[float, float, float]]) -> None:
    tr = tracker()
    states = []
    for i, (util, lat, loss) in enumerate(values):
        t = tr.observe("b", float(i), util, lat, loss)
        if t:
            states.append(t.state)
    # Transitions strictly alternate DEGRADED, UP, DEGRADED, ...
    assert all(s == (DEGRADED if i % 2 == 0 else UP) for i, s in enumerate(states))


def test_redelivery_changes_nothing() -> None:
    """At-least-once consumption: folding a prefix of the samples again is a no-op."""
    seq = [("ab"[i % 2], float(i), 10.0 + i, 20.0 + (i % 7) * 9, 0.0) for i in range(60)]
    once, twice = tracker(), tracker()
    a = [once.observe(*s) for s in seq]
    b = [twice.observe(*s) for s in seq[:40]] + [twice.observe(*s) for s in seq[25:]]
    assert [x for x in a if x] == [x for x in b if x]
    for site in "ab":
        assert once.dirs[site] == twice.dirs[site]
