"""Benchmark: request → decision through Kafka and the worker, at steady request rates.

Protocol: fresh prefixed topics on the broker; the GÉANT inventory (Topology Zoo Geant2012,
40 sites) published; one `tandem worker` started as its own process; `--active` workloads
admitted first (seeded workload generator, bandwidths scaled by `--bw-scale` so a thousand fit);
then, for `--seconds`, `--rate` place requests per second, each followed by the release of the
oldest workload so the population stays steady. The latency of a request is the time from just
before the benchmark hands it to its producer to the moment the benchmark's consumer receives
its decision from the decisions topic: one Kafka hop (requests → the decider, which folds it
and commits the decision in one transaction) and the joint decision itself. `--rates 100,500` runs
one timed phase per rate; `--sweep` then raises the rate until p99 exceeds 250 ms (the
maximum sustained rate); `--workers 2` runs two workers in one group.

    python -m tandem.bench.request_latency          # or: tandem bench request-latency
    tandem bench request-latency --rates 100,500 --sweep [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tandem.bench.stats import percentile

OUT = Path("bench/out/request_latency.json")


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", default=os.environ.get("TANDEM_KAFKA", "127.0.0.1:9092"))
    p.add_argument("--topology", default="data/zoo/Geant2012.graphml")
    p.add_argument("--active", type=int, default=1000)
    p.add_argument("--rate", type=float, default=100.0, help="place requests per second")
    p.add_argument("--rates", default="",
                   help="comma-separated rates, one timed phase each (overrides --rate), e.g. "
                        "100,500")
    p.add_argument("--sweep", action="store_true",
                   help="after the rates, raise the rate until p99 > 250 ms: the maximum "
                        "sustained rate")
    p.add_argument("--workers", type=int, default=1, help="workers in the group")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bw-scale", type=float, default=0.15)
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--keep-topics", action="store_true")


def register(sub: Any) -> None:
    p = sub.add_parser("request-latency",
                       help="request → decision p50/p99 through Kafka and Faust at 100 req/s")
    add_args(p)
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tandem bench request-latency")
    add_args(p)
    return run(p.parse_args(argv))



def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


SWEEP = (100, 200, 300, 500, 700, 1000, 1300, 1600, 2000)
SWEEP_P99_MS = 250.0


async def _run(args: argparse.Namespace) -> int:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from tandem.bench.workers import Workers, inventory_decided
    from tandem.engine.loaders import load_topology
    from tandem.engine.network import Network
    from tandem.engine.workgen import generate
    from tandem.events import new_meta
    from tandem.pbconvert import request_to_pb
    from tandem.services.kafka_admin import delete_topics_with_prefix, ensure_topics
    from tandem.streams import topics as T
    from tandem.v1 import decision_pb2, workload_pb2

    load0 = round(os.getloadavg()[0], 2)
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    topo = load_topology(args.topology)
    await ensure_topics(args.broker, T.core_topics(prefix))
    name = lambda base: T.SPECS[base].name(prefix)  # noqa: E731
    rates = [float(r) for r in args.rates.split(",") if r] or [args.rate]
    total = sum(int(r * args.seconds) for r in rates) + (
        sum(int(r * args.seconds) for r in SWEEP) if args.sweep else 0)
    s = args.bw_scale
    reqs = generate(topo, 20 * args.active + 2 * total, args.seed,
                    net=Network(topo), bw_low=0.03 * s, bw_high=0.12 * s)
    stream = iter(reqs)
    producer = AIOKafkaProducer(bootstrap_servers=args.broker, acks="all", linger_ms=0)
    await producer.start()
    consumer = AIOKafkaConsumer(name(T.DECISIONS_BASE), bootstrap_servers=args.broker,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                isolation_level="read_committed", fetch_max_wait_ms=5)
    await consumer.start()
    tmp = Path(tempfile.mkdtemp(prefix="tandem-bench-"))
    app_id = f"{prefix}worker"
    workers = Workers(args.workers, args.broker, prefix, tmp, app_id, restart=False,
                      loglevel="warning")
    arrived: dict[str, tuple[float, int]] = {}

    async def collect() -> None:
        async for rec in consumer:
            d = decision_pb2.Decision.FromString(rec.value)
            arrived.setdefault(d.request_id, (time.perf_counter(), d.kind))

    def event(req: Any) -> workload_pb2.RequestEvent:
        return workload_pb2.RequestEvent(meta=new_meta("bench"), request_id=req.request_id,
                                         place=request_to_pb(req))

    collector = asyncio.create_task(collect())
    phases: list[dict[str, Any]] = []
    try:
        workers.start_all()
        # Requests travel another topic: the decider has the whole inventory first.
        await inventory_decided(producer, args.broker, prefix, app_id, topo)
        print(f"published {len(topo.sites)} sites and {len(topo.links)} links; "
              f"{args.workers} worker(s), logs in {tmp}", flush=True)

        # Fill: admit --active workloads (rejections are expected on a loaded network).
        admitted: list[str] = []
        started = time.perf_counter()
        while len(admitted) < args.active:
            batch = [next(stream) for _ in range(min(200, 2 * (args.active - len(admitted))))]
            for req in batch:
                await producer.send(name(T.REQUESTS_BASE), key=req.workload_id.encode(),
                                    value=event(req).SerializeToString())
            await producer.flush()
            deadline = time.monotonic() + 300
            while not all(r.request_id in arrived for r in batch):
                if time.monotonic() > deadline or workers.exits:
                    raise RuntimeError(f"fill stalled; see {tmp}")
                await asyncio.sleep(0.05)
            admitted += [r.workload_id for r in batch
                         if arrived[r.request_id][1] == decision_pb2.DECISION_KIND_PLACED]
        admitted = admitted[: args.active]
        fill_s = time.perf_counter() - started
        print(f"fill: {len(admitted)} workloads active after {fill_s:.1f} s", flush=True)

        async def phase(rate: float) -> dict[str, Any]:
            """A steady rate of place requests, each followed by the release of the oldest
            workload; latency of the place requests, produce → decision received."""
            sent: dict[str, float] = {}
            n = int(rate * args.seconds)
            t0 = time.perf_counter()
            for i in range(n):
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                req = next(stream)
                sent[req.request_id] = time.perf_counter()
                await producer.send(name(T.REQUESTS_BASE), key=req.workload_id.encode(),
                                    value=event(req).SerializeToString())
                old = admitted.pop(0)
                rel = workload_pb2.RequestEvent(
                    meta=new_meta("bench"), request_id=f"release-{old}-{i}-{rate}",
                    release=workload_pb2.ReleaseRequest(workload_id=old))
                await producer.send(name(T.REQUESTS_BASE), key=old.encode(),
                                    value=rel.SerializeToString())
                admitted.append(req.workload_id)  # released later even if rejected (harmless)
            send_s = time.perf_counter() - t0
            deadline = time.monotonic() + 120
            while not all(r in arrived for r in sent) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            lat = [(arrived[r][0] - t) * 1000 for r, t in sent.items() if r in arrived]
            kinds: dict[str, int] = {}
            for r in sent:
                if r in arrived:
                    k = decision_pb2.DecisionKind.Name(arrived[r][1]).removeprefix(
                        "DECISION_KIND_").lower()
                    kinds[k] = kinds.get(k, 0) + 1
            done = max((arrived[r][0] for r in sent if r in arrived), default=t0)
            res = {"rate_target": rate, "rate_sent": round(n / send_s, 1),
                   "decisions_per_s": round(2 * len(lat) / max(1e-9, done - t0), 1),
                   "requests": n, "decided": len(lat), "lost": n - len(lat), "outcomes": kinds,
                   "latency_ms": {"p50": percentile(lat, 0.5), "p90": percentile(lat, 0.9),
                                  "p99": percentile(lat, 0.99),
                                  "max": max(lat) if lat else float("nan"),
                                  "mean": statistics.fmean(lat) if lat else float("nan")}}
            lm = res["latency_ms"]
            print(f"  {rate:>7.0f}/s (+ as many releases): p50 {lm['p50']:.1f} ms, p99 "
                  f"{lm['p99']:.1f} ms, max {lm['max']:.1f} ms; {res['decisions_per_s']} "
                  f"decisions/s; {res['lost']} lost", flush=True)
            return res

        for rate in rates:
            phases.append(phase_r := await phase(rate))
            phase_r["kind"] = "target"
        best = None
        if args.sweep:
            for rate in SWEEP:
                r = await phase(rate)
                r["kind"] = "sweep"
                phases.append(r)
                if r["lost"] or r["latency_ms"]["p99"] > SWEEP_P99_MS or \
                        r["rate_sent"] < 0.95 * rate:
                    break
                best = rate
    finally:
        collector.cancel()
        workers.stop_all()
        await consumer.stop()
        await producer.stop()
        if not args.keep_topics:
            await delete_topics_with_prefix(args.broker, prefix)
    targets = {100.0: 50.0, 500.0: 100.0}
    result = {
        "topology": Path(args.topology).stem, "sites": len(topo.sites), "workers": args.workers,
        "active_workloads": args.active, "seconds_per_phase": args.seconds, "phases": phases,
        "max_sustained_rate_p99_le_250ms": best if args.sweep else None,
        "targets_p99_ms": {str(int(k)): v for k, v in targets.items()},
        "fill_seconds": round(fill_s, 1),
        "load_average_1m_start_end": [load0, round(os.getloadavg()[0], 2)],
        "command": "tandem bench request-latency " + " ".join(sys.argv[3:]),
    }
    print(f"\n{'workers':>7}{'rate/s':>9}{'sent/s':>9}{'dec/s':>9}{'p50 ms':>9}{'p90 ms':>9}"
          f"{'p99 ms':>9}{'max ms':>9}{'lost':>6}  target")
    for ph in phases:
        lm = ph["latency_ms"]
        tgt = targets.get(ph["rate_target"]) if ph["kind"] == "target" else SWEEP_P99_MS
        verdict = "" if tgt is None else ("met" if lm["p99"] <= tgt and not ph["lost"]
                                          else "NOT met") + f" (p99 <= {tgt:.0f})"
        print(f"{args.workers:>7}{ph['rate_target']:>9.0f}{ph['rate_sent']:>9.1f}"
              f"{ph['decisions_per_s']:>9.1f}{lm['p50']:>9.1f}{lm['p90']:>9.1f}{lm['p99']:>9.1f}"
              f"{lm['max']:>9.1f}{ph['lost']:>6}  {verdict}")
    if args.sweep:
        print(f"maximum sustained rate with p99 <= {SWEEP_P99_MS:.0f} ms: "
              f"{best if best is not None else 'below ' + str(SWEEP[0])} requests/s "
              f"(+ as many releases)")
    print(f"load average (1 min) at start/end: {result['load_average_1m_start_end']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0
