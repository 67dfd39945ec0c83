"""Telemetry smoothing, SLA bands and hysteresis: pure, deterministic, no I/O.

Why this exists: raw samples are noisy (one slow probe, one burst) and the engine must not
reroute or migrate workloads on noise. So every metric is smoothed with an exponentially
weighted moving average whose weight depends on the *sample timestamps* (a time constant,
not a sample count: an exporter that reports twice as often does not make the average
twice as nervous), and a link changes state only through a hysteresis state machine:

- the SLA band of a link comes from its inventory entry (nominal latency, loss, capacity);
- DEGRADED when a smoothed metric stays outside the *outer* band for `degrade_hold_s`
  seconds of sample time and at least `degrade_samples` consecutive samples;
- back UP only when every smoothed metric has stayed inside the *inner* (tighter) band for
  `recover_hold_s` seconds and `recover_samples` samples.

A metric hovering around a threshold therefore produces at most one transition per hold
period. Given the same sample sequence, the same transitions come out (no wall clock).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tandem.v1 import inventory_pb2

UP = "up"
DEGRADED = "degraded"

# Metric names, as written to Degradation.metric.
LATENCY = "latency_ms"
LOSS = "loss"
CAPACITY = "capacity_mbps"


@dataclass(frozen=True)
class Params:
    """Smoothing and hysteresis parameters (documented in docs/TELEMETRY.md)."""

    # EWMA time constant: a step change reaches 63 % of its size after tau_s seconds.
    tau_s: float = 10.0
    # Latency SLA: above max(nominal * factor, nominal + margin).
    latency_factor: float = 1.5
    latency_margin_ms: float = 5.0
    # Loss SLA: above nominal loss + margin (a ratio, 0..1).
    loss_margin: float = 0.01
    # Usable capacity SLA: utilisation above this fraction of the direction's capacity.
    utilisation_limit: float = 0.95
    # Inner (recovery) band: base + recover_ratio * (outer - base), base being the nominal
    # latency, the nominal loss and zero utilisation.
    recover_ratio: float = 0.8
    degrade_hold_s: float = 10.0
    degrade_samples: int = 3
    recover_hold_s: float = 30.0
    recover_samples: int = 5

    def __post_init__(self) -> None:
        if not self.tau_s > 0:
            raise ValueError("tau_s must be > 0")
        if not 0 < self.recover_ratio <= 1:
            raise ValueError("recover_ratio must be within (0, 1]")
        if self.degrade_samples < 1 or self.recover_samples < 1:
            raise ValueError("degrade_samples and recover_samples must be >= 1")
        if self.degrade_hold_s < 0 or self.recover_hold_s < 0:
            raise ValueError("hold times must be >= 0")


@dataclass(frozen=True)
class Band:
    """The SLA band of one link: outer limits (degrade) and inner limits (recover)."""

    link_id: str
    site_a: str
    site_b: str
    capacity: dict[str, float]  # per direction (from_site) in Mbps; 0 = unknown
    latency_outer: float
    latency_inner: float
    loss_outer: float
    loss_inner: float
    util_outer: dict[str, float]
    util_inner: dict[str, float]


def band_of(link: inventory_pb2.Link, p: Params) -> Band:
    """The SLA band of `link` from its inventory entry."""
    nominal_lat = max(0.0, link.latency_ms)
    lat_outer = max(nominal_lat * p.latency_factor, nominal_lat + p.latency_margin_ms)
    nominal_loss = min(max(0.0, link.loss), 1.0)
    loss_outer = min(1.0, nominal_loss + p.loss_margin)
    cap = {link.site_a: max(0.0, link.capacity_ab_mbps),
           link.site_b: max(0.0, link.capacity_ba_mbps)}
    util_outer = {s: c * p.utilisation_limit for s, c in cap.items()}
    return Band(
        link_id=link.link_id, site_a=link.site_a, site_b=link.site_b, capacity=cap,
        latency_outer=lat_outer,
        latency_inner=nominal_lat + p.recover_ratio * (lat_outer - nominal_lat),
        loss_outer=loss_outer,
        loss_inner=nominal_loss + p.recover_ratio * (loss_outer - nominal_loss),
        util_outer=util_outer,
        util_inner={s: p.recover_ratio * u for s, u in util_outer.items()},
    )


def alpha(dt: float, tau: float) -> float:
    """EWMA weight of a sample `dt` seconds after the previous one.

    A sample no newer than the last one (a redelivery, a late or same-instant sample) gets
    no weight, so re-processing a record never moves the average.
    """
    if dt <= 0:
        return 0.0
    return -math.expm1(-dt / tau)


@dataclass(slots=True)
class Ewma:
    """Exponentially weighted moving average over irregularly spaced samples."""

    value: float = 0.0
    t: float = -math.inf
    seen: bool = False

    def update(self, x: float, t: float, tau: float) -> None:
        if not self.seen:
            self.value, self.t, self.seen = x, t, True
            return
        a = alpha(t - self.t, tau)
        if a > 0.0:
            self.value += a * (x - self.value)
            self.t = t


@dataclass(slots=True)
class Direction:
    """Smoothed metrics of one direction of a link."""

    util: Ewma = field(default_factory=Ewma)
    latency: Ewma = field(default_factory=Ewma)
    loss: Ewma = field(default_factory=Ewma)
    # Samples newer than every earlier one of this direction (a redelivered record is not
    # counted twice), and the newest sample time.
    samples: int = 0
    last_t: float = 0.0


@dataclass(frozen=True)
class Finding:
    """A metric outside its band: which, in which direction, how far."""

    metric: str
    from_site: str
    observed: float
    threshold: float

    @property
    def severity(self) -> float:
        # How far outside, relative to the limit (a stable order for "worst metric").
        return self.observed / self.threshold if self.threshold > 0 else math.inf


@dataclass(frozen=True)
class Transition:
    """A state change to publish: DEGRADED (with its finding) or UP."""

    link_id: str
    state: str
    at: float
    finding: Finding | None
    # Usable capacity per direction: nominal * (1 - smoothed loss) (0 when unknown).
    effective_ab_mbps: float
    effective_ba_mbps: float
    cause: str


def _ordinal(f: Finding) -> tuple[float, str, str]:
    return (-f.severity, f.metric, f.from_site)


@dataclass
class LinkTracker:
    """Smoothed metrics and hysteresis state of one link (both directions)."""

    band: Band
    params: Params = field(default_factory=Params)
    dirs: dict[str, Direction] = field(default_factory=dict)
    state: str = UP
    clock: float = -math.inf
    pending_since: float | None = None
    pending_count: int = 0
    last_transition: float = 0.0
    finding: Finding | None = None

    def observe(self, from_site: str, t: float, utilisation_mbps: float | None = None,
                latency_ms: float | None = None, loss: float | None = None) -> Transition | None:
        """Fold one sample of direction `from_site` (an endpoint) taken at time `t`."""
        if from_site not in (self.band.site_a, self.band.site_b):
            raise KeyError(f"{from_site!r} is not an endpoint of link {self.band.link_id!r}")
        d = self.dirs.get(from_site)
        if d is None:
            d = self.dirs[from_site] = Direction()
        tau = self.params.tau_s
        if utilisation_mbps is not None:
            d.util.update(utilisation_mbps, t, tau)
        if latency_ms is not None:
            d.latency.update(latency_ms, t, tau)
        if loss is not None:
            d.loss.update(loss, t, tau)
        if not (d.samples == 0 or t > d.last_t):
            return None  # a redelivered or late sample: not counted, judges nothing
        d.samples += 1
        d.last_t = t
        if t < self.clock:
            return None  # late against the other direction: changed nothing time can judge
        self.clock = t
        return self._step(t)

    def rebase(self, band: Band) -> None:
        """The inventory entry changed: judge the same smoothed values against a new band."""
        self.band = band
        for s in [s for s in self.dirs if s not in (band.site_a, band.site_b)]:
            del self.dirs[s]

    def outside(self, inner: bool) -> list[Finding]:
        """Metrics outside the outer band (or, with `inner`, outside the inner band)."""
        b = self.band
        lat = b.latency_inner if inner else b.latency_outer
        loss = b.loss_inner if inner else b.loss_outer
        out: list[Finding] = []
        for site, d in self.dirs.items():
            if d.latency.seen and d.latency.value > lat:
                out.append(Finding(LATENCY, site, d.latency.value, lat))
            if d.loss.seen and d.loss.value > loss:
                out.append(Finding(LOSS, site, d.loss.value, loss))
            limit = (b.util_inner if inner else b.util_outer).get(site, 0.0)
            if d.util.seen and b.capacity.get(site, 0.0) > 0 and d.util.value > limit:
                out.append(Finding(CAPACITY, site, d.util.value, limit))
        return sorted(out, key=_ordinal)

    def effective(self, site: str) -> float:
        cap = self.band.capacity.get(site, 0.0)
        d = self.dirs.get(site)
        if d is None or not d.loss.seen:
            return cap
        return cap * max(0.0, 1.0 - d.loss.value)

    def any_outside(self, inner: bool) -> bool:
        """`bool(self.outside(inner))`, without building findings (the per-sample path)."""
        b = self.band
        lat = b.latency_inner if inner else b.latency_outer
        loss = b.loss_inner if inner else b.loss_outer
        limits = b.util_inner if inner else b.util_outer
        for site, d in self.dirs.items():
            if d.latency.seen and d.latency.value > lat:
                return True
            if d.loss.seen and d.loss.value > loss:
                return True
            if d.util.seen and b.capacity.get(site, 0.0) > 0 and d.util.value > limits[site]:
                return True
        return False

    def _step(self, t: float) -> Transition | None:
        p = self.params
        if self.state == UP:
            hold, need = p.degrade_hold_s, p.degrade_samples
            cond = self.any_outside(inner=False)
        else:
            hold, need = p.recover_hold_s, p.recover_samples
            cond = not self.any_outside(inner=True)
        if not cond:
            self.pending_since, self.pending_count = None, 0
            return None
        if self.pending_since is None:
            self.pending_since = t
        self.pending_count += 1
        if t - self.pending_since < hold or self.pending_count < need:
            return None
        self.pending_since, self.pending_count = None, 0
        self.last_transition = t
        b = self.band
        if self.state == UP:
            bad = self.outside(inner=False)
            self.state, self.finding = DEGRADED, bad[0]
            f = bad[0]
            cause = (f"{f.metric} {f.observed:.4g} above SLA {f.threshold:.4g} "
                     f"from {f.from_site} for {hold:g} s")
        else:
            self.state, self.finding = UP, None
            f = None
            cause = f"all metrics back inside the recovery band for {hold:g} s"
        return Transition(self.band.link_id, self.state, t, f, self.effective(b.site_a),
                          self.effective(b.site_b), cause)


@dataclass(slots=True)
class SiteTracker:
    """Smoothed free capacity of one site (no state machine: capacity is not an SLA)."""

    vcpus: Ewma = field(default_factory=Ewma)
    memory_gib: Ewma = field(default_factory=Ewma)
    storage_gib: Ewma = field(default_factory=Ewma)
    samples: int = 0
    last_t: float = 0.0

    def observe(self, t: float, vcpus: float, memory_gib: float, storage_gib: float,
                tau: float) -> None:
        self.vcpus.update(vcpus, t, tau)
        self.memory_gib.update(memory_gib, t, tau)
        self.storage_gib.update(storage_gib, t, tau)
        self.samples += 1
        self.last_t = max(self.last_t, t)


@dataclass(slots=True)
class PortCounter:
    """Turns a switch port's cumulative counters into a rate and an egress loss ratio.

    Counters reset (switch restart) or a non-advancing duration re-baseline silently: the
    next pair of samples gives a rate again.
    """

    tx_bytes: int = -1
    tx_packets: int = 0
    tx_dropped: int = 0
    duration_s: float = 0.0

    def update(self, tx_bytes: int, tx_packets: int, tx_dropped: int,
               duration_s: float) -> tuple[float, float] | None:
        prev = (self.tx_bytes, self.tx_packets, self.tx_dropped, self.duration_s)
        self.tx_bytes, self.tx_packets = tx_bytes, tx_packets
        self.tx_dropped, self.duration_s = tx_dropped, duration_s
        if prev[0] < 0:
            return None
        dt = duration_s - prev[3]
        db, dp, dd = tx_bytes - prev[0], tx_packets - prev[1], tx_dropped - prev[2]
        if dt <= 0 or db < 0 or dp < 0 or dd < 0:
            return None
        mbps = db * 8 / dt / 1e6
        loss = dd / (dp + dd) if dp + dd > 0 else 0.0
        return mbps, loss
