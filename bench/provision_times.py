"""Pure helpers of `tandem bench provision`: one workload's timeline cut into where its time
went, and the summaries over many workloads.

Kept apart from the orchestration (bench/provision.py) so that the arithmetic the figures rest
on is unit-tested without a broker: every figure the benchmark prints comes from these.

A timeline is a start (the order handed to the producer, wall clock ms), a sequence of marks and
unit steps, and the moment the benchmark's consumer saw the final status. Record times are the
Kafka record timestamps (CreateTime, ms, set by the producer that wrote the record: decider,
executor, unit), so every segment is measured on the one machine's wall clock and the segments
add up exactly to the end-to-end time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tandem.bench.stats import percentile

# Categories of a segment: who the time is spent in.
DECIDER, EXECUTOR, DRIVER, KAFKA, CLIENT = ("decider", "executor", "driver",
                                            "kafka+unit queue", "visible to client")


@dataclass(frozen=True)
class Mark:
    """A record some stream processor wrote (a decision, a status): the time since the previous
    point is that processor's (its Kafka hop is included: it cannot be told apart from outside)."""

    label: str
    ts_ms: float
    category: str = EXECUTOR


@dataclass(frozen=True)
class Cmd:
    """One command of a unit step: its record on the site's command topic, its ack's record,
    the time the ack says the driver took, and whether the ack was a refusal."""

    sent_ms: float
    ack_ms: float
    driver_ms: float
    site: str
    failed: bool = False


@dataclass(frozen=True)
class Step:
    """A step of commands to units. It ends at its last ack or, when a command was refused, at
    the first refusal (the executor fails the job there)."""

    label: str
    cmds: tuple[Cmd, ...]

    def end_ms(self) -> float:
        refused = [c.ack_ms for c in self.cmds if c.failed]
        return min(refused) if refused else max(c.ack_ms for c in self.cmds)

    def driver_ms(self) -> float:
        """Driver time on the step's critical path: a unit applies its commands one after the
        other, so per site the sum of the durations acknowledged by the step's end; the
        slowest site's sum (sites work in parallel)."""
        end = self.end_ms()
        per_site: dict[str, float] = {}
        for c in self.cmds:
            if c.ack_ms <= end:
                per_site[c.site] = per_site.get(c.site, 0.0) + c.driver_ms
        return max(per_site.values(), default=0.0)


@dataclass
class Segment:
    label: str
    category: str
    ms: float


@dataclass
class Timeline:
    segments: list[Segment] = field(default_factory=list)

    def total(self) -> float:
        return sum(s.ms for s in self.segments)

    def by_category(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for s in self.segments:
            out[s.category] = out.get(s.category, 0.0) + s.ms
        return out


def timeline(start_ms: float, parts: list[Mark | Step], seen_ms: float) -> Timeline:
    """Cut start → seen into consecutive segments; they add up to `seen_ms - start_ms`.

    A step costs: the executor's hop (previous point → its first command on a command topic:
    the ack or decision reaching the executor over Kafka, the fold, the transaction), the
    driver time the acks report, and the rest of first command → step end (the command's
    Kafka hop, the wait in the unit behind other commands, the unit's own work around the
    driver call, the ack's hop back). The driver share is capped by the span it lies in."""
    out = Timeline()
    prev = start_ms
    for p in parts:
        if isinstance(p, Mark):
            out.segments.append(Segment(p.label, p.category, p.ts_ms - prev))
            prev = p.ts_ms
            continue
        if not p.cmds:
            continue
        first = min(c.sent_ms for c in p.cmds)
        end = p.end_ms()
        span = end - first
        driver = min(p.driver_ms(), max(0.0, span))
        out.segments += [Segment(f"{p.label}: executor", EXECUTOR, first - prev),
                         Segment(f"{p.label}: driver", DRIVER, driver),
                         Segment(f"{p.label}: kafka+unit queue", KAFKA, span - driver)]
        prev = end
    out.segments.append(Segment("status seen by the client", CLIENT, seen_ms - prev))
    return out


def stats(xs: list[float]) -> dict[str, float]:
    """p50/p99/max (nearest rank) and the count; NaN figures for an empty list."""
    return {"n": len(xs), "p50": percentile(xs, 0.5), "p99": percentile(xs, 0.99),
            "max": max(xs) if xs else float("nan")}


def medians(timelines: list[Timeline]) -> dict[str, float]:
    """Median of every segment label over the timelines (labels in first-seen order)."""
    labels: list[str] = []
    for t in timelines:
        labels += [s.label for s in t.segments if s.label not in labels]
    return {lab: percentile([s.ms for t in timelines for s in t.segments if s.label == lab], 0.5)
            for lab in labels}


def shares(timelines: list[Timeline]) -> dict[str, float]:
    """Each category's share of the summed time over all timelines (fractions adding to 1)."""
    tot: dict[str, float] = {}
    for t in timelines:
        for k, v in t.by_category().items():
            tot[k] = tot.get(k, 0.0) + v
    whole = sum(tot.values())
    return {k: (v / whole if whole else float("nan")) for k, v in tot.items()}


LOADS = (("single", "1 at a time"), ("concurrent", "at once"), ("rollback", "rollback"))


def report(out: dict[str, Any]) -> None:
    """The figures and where the time goes, as tables (rich when installed, else plain)."""
    head = ["driver", "load", "n", "measure", "p50 ms", "p99 ms", "max ms"]
    rows: list[list[str]] = []
    for drv, res in out["drivers"].items():
        for key, name in LOADS:
            r = res[key]
            load = f"{r['workloads']} {name}" if key != "rollback" else \
                f"{r['workloads']} rollbacks"
            for measure, s in r["ms"].items():
                rows.append([drv, load, str(s["n"]), measure, f"{s['p50']:.1f}",
                             f"{s['p99']:.1f}", f"{s['max']:.1f}"])
    _table("order → decision → ACTIVE (record timestamps; 'seen' = read by the benchmark)",
           head, rows)
    for drv, res in out["drivers"].items():
        labels: list[str] = []
        for k, _ in LOADS:
            labels += [lab for lab in res[k]["segments_p50_ms"] if lab not in labels]
        rows = [[lab] + [_fmt(res[k]["segments_p50_ms"].get(lab)) for k, _ in LOADS]
                for lab in labels]
        cats = sorted({c for k, _ in LOADS for c in res[k]["shares"]})
        rows += [[f"share: {c}"] + [f"{100 * res[k]['shares'].get(c, 0.0):.0f} %"
                                    for k, _ in LOADS] for c in cats]
        _table(f"{drv}: where the time goes (median ms per workload; each category's share "
               "of all the time)", ["segment"] + [k for k, _ in LOADS], rows)
    for drv, res in out["drivers"].items():
        for key, _ in LOADS:
            u = res[key].get("units", {})
            if u:
                print(f"{drv} {key}: units' driver busy share of their span: " + ", ".join(
                    f"{s} {100 * x['busy']:.0f} % ({x['commands']} cmds, "
                    f"{x['driver_ms'] / 1000:.1f} s)" for s, x in u.items()))
        print(f"{drv}: placements per site (concurrent): {res['concurrent']['sites']}; "
              f"outcomes: " + "; ".join(f"{k} {res[k]['outcomes']}" for k, _ in LOADS))
        print(f"{drv}: rollback fault: {res['rollback']['fault']}; e.g. "
              f"{res['rollback'].get('failure_reason_example', '(none)')!r}")
    print(f"note: {out['note']}")
    g = out.get("git", {})
    if g:
        print(f"measured at commit {g.get('commit')}" + (
            f", with uncommitted changes to {', '.join(g['uncommitted'])}"
            if g.get("uncommitted") else ""))
    print(f"load average (1 min) at start/end: {out['load_average_1m_start_end']} (2 cores)")


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.1f}"


def _table(title: str, head: list[str], rows: list[list[str]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # an install from before rich was a dependency: plain columns then
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        print(f"\n{title}")
        for r in [head, *rows]:
            print("  ".join(c.rjust(w) if i else c.ljust(w)
                            for i, (c, w) in enumerate(zip(r, widths))))
        return
    t = Table(title=title, title_justify="left")
    for i, h in enumerate(head):
        t.add_column(h, justify="left" if i == 0 or h in ("measure", "load") else "right")
    for r in rows:
        t.add_row(*r)
    Console(width=max(110, Console().width)).print(t)
