"""Benchmark: request → decision through Kafka and Faust, at a steady request rate.

Protocol: fresh prefixed topics on the broker; the GÉANT inventory (Topology Zoo Geant2012,
40 sites) published; one `tandem worker` started as its own process; `--active` workloads
admitted first (seeded workload generator, bandwidths scaled by `--bw-scale` so a thousand fit);
then, for `--seconds`, `--rate` place requests per second, each followed by the release of the
oldest workload so the population stays steady. The latency of a request is the time from just
before the benchmark hands it to its producer to the moment the benchmark's consumer receives
its decision from the decisions topic: two Kafka hops (requests → decider log → decisions), the
Faust agents and the joint decision itself.

    python -m tandem.bench.request_latency          # or: tandem bench request-latency
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
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


async def _run(args: argparse.Namespace) -> int:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from tandem.engine.loaders import load_topology
    from tandem.engine.network import Network
    from tandem.engine.workgen import generate
    from tandem.events import new_meta
    from tandem.inventory import inventory_events, inventory_key
    from tandem.pbconvert import request_to_pb
    from tandem.services.kafka_admin import delete_topics_with_prefix, ensure_topics
    from tandem.streams import topics as T
    from tandem.v1 import decision_pb2, workload_pb2

    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    topo = load_topology(args.topology)
    specs = T.core_topics(prefix)
    await ensure_topics(args.broker, specs)
    name = lambda base: T.SPECS[base].name(prefix)  # noqa: E731
    s = args.bw_scale
    reqs = generate(topo, 20 * args.active + int(args.rate * args.seconds) * 2, args.seed,
                    net=Network(topo), bw_low=0.03 * s, bw_high=0.12 * s)
    stream = iter(reqs)
    producer = AIOKafkaProducer(bootstrap_servers=args.broker, acks="all", linger_ms=0)
    await producer.start()
    consumer = AIOKafkaConsumer(name(T.DECISIONS_BASE), bootstrap_servers=args.broker,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                isolation_level="read_committed")
    await consumer.start()
    tmp = Path(tempfile.mkdtemp(prefix="tandem-bench-"))
    env = {**os.environ, "TANDEM_KAFKA": args.broker, "TANDEM_TOPIC_PREFIX": prefix,
           "TANDEM_APP_ID": f"{prefix}worker", "TANDEM_DATA_DIR": str(tmp)}
    log = open(tmp / "worker.log", "wb")
    worker = subprocess.Popen([sys.executable, "-m", "tandem.cli", "worker", "--no-web",
                               "--loglevel", "warning"], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    arrived: dict[str, tuple[float, int]] = {}

    async def collect() -> None:
        async for rec in consumer:
            d = decision_pb2.Decision.FromString(rec.value)
            arrived.setdefault(d.request_id, (time.perf_counter(), d.kind))

    collector = asyncio.create_task(collect())
    try:
        for ev in inventory_events(topo, source="bench/inventory"):
            await producer.send(name(T.INVENTORY_BASE), key=inventory_key(ev).encode(),
                                value=ev.SerializeToString())
        await producer.flush()
        n_inv = len(topo.sites) + len(topo.links)
        inputs = AIOKafkaConsumer(name(T.DECIDER_BASE), bootstrap_servers=args.broker,
                                  auto_offset_reset="earliest", enable_auto_commit=False,
                                  isolation_level="read_committed")
        await inputs.start()
        try:  # requests travel another topic: wait until the decider has the whole inventory
            seen = 0
            deadline = time.monotonic() + 120
            while seen < n_inv:
                batch = await inputs.getmany(timeout_ms=500)
                seen += sum(len(v) for v in batch.values())
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise RuntimeError(f"inventory not folded; see {tmp / 'worker.log'}")
        finally:
            await inputs.stop()
        print(f"published {len(topo.sites)} sites and {len(topo.links)} links; "
              f"worker pid {worker.pid}, log {tmp / 'worker.log'}")

        def event(req: Any) -> workload_pb2.RequestEvent:
            return workload_pb2.RequestEvent(meta=new_meta("bench"), request_id=req.request_id,
                                             place=request_to_pb(req))

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
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise RuntimeError(f"fill stalled; see {tmp / 'worker.log'}")
                await asyncio.sleep(0.05)
            admitted += [r.workload_id for r in batch
                         if arrived[r.request_id][1] == decision_pb2.DECISION_KIND_PLACED]
        admitted = admitted[: args.active] if len(admitted) > args.active else admitted
        fill_s = time.perf_counter() - started
        print(f"fill: {len(admitted)} workloads active after {fill_s:.1f} s")

        # Timed phase: steady rate of place requests, each followed by one release.
        sent: dict[str, float] = {}
        interval = 1.0 / args.rate
        n = int(args.rate * args.seconds)
        t0 = time.perf_counter()
        for i in range(n):
            target = t0 + i * interval
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            req = next(stream)
            sent[req.request_id] = time.perf_counter()
            await producer.send(name(T.REQUESTS_BASE), key=req.workload_id.encode(),
                                value=event(req).SerializeToString())
            if admitted:
                old = admitted.pop(0)
                rel = workload_pb2.RequestEvent(
                    meta=new_meta("bench"), request_id=f"release-{old}-{i}",
                    release=workload_pb2.ReleaseRequest(workload_id=old))
                await producer.send(name(T.REQUESTS_BASE), key=old.encode(),
                                    value=rel.SerializeToString())
            admitted.append(req.workload_id)  # released later even if rejected (harmless)
        send_s = time.perf_counter() - t0
        deadline = time.monotonic() + 60
        while not all(r in arrived for r in sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        lat = [(arrived[r][0] - t) * 1000 for r, t in sent.items() if r in arrived]
        kinds: dict[str, int] = {}
        for r in sent:
            if r in arrived:
                k = decision_pb2.DecisionKind.Name(arrived[r][1]).removeprefix("DECISION_KIND_")
                kinds[k.lower()] = kinds.get(k.lower(), 0) + 1
        result = {
            "topology": Path(args.topology).stem, "sites": len(topo.sites),
            "active_workloads": args.active, "rate_target": args.rate,
            "rate_achieved": round(n / send_s, 1), "requests": n,
            "decided": len(lat), "lost": n - len(lat), "outcomes": kinds,
            "latency_ms": {"p50": percentile(lat, 0.5), "p90": percentile(lat, 0.9), "p99": percentile(lat, 0.99),
                           "max": max(lat) if lat else float("nan"),
                           "mean": statistics.fmean(lat) if lat else float("nan")},
            "target_p99_ms": 50.0, "fill_seconds": round(fill_s, 1),
            "command": "tandem bench request-latency " + " ".join(sys.argv[3:]),
        }
    finally:
        collector.cancel()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        await consumer.stop()
        await producer.stop()
        if not args.keep_topics:
            await delete_topics_with_prefix(args.broker, prefix)
    lm = result["latency_ms"]
    print(f"\n{'topology':<12}{'active':>8}{'rate/s':>9}{'decided':>9}{'p50 ms':>9}"
          f"{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    print(f"{result['topology']:<12}{args.active:>8}{result['rate_achieved']:>9}"
          f"{result['decided']:>9}{lm['p50']:>9.1f}{lm['p90']:>9.1f}{lm['p99']:>9.1f}{lm['max']:>9.1f}")
    print(f"outcomes: {kinds}; target p99 <= 50 ms: "
          f"{'met' if lm['p99'] <= 50 else 'NOT met'}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
