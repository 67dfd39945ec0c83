"""Benchmark: the northbound gRPC API — WhatIf and PlaceAndConnect — on GÉANT with active
workloads, at steady call rates, against a real broker, worker and `tandem api` process.

Protocol: fresh prefixed topics; the GÉANT inventory (Topology Zoo Geant2012, 40 sites)
published; one `tandem worker` process; `--active` workloads admitted through Kafka (seeded
workload generator, bandwidths scaled by `--bw-scale` so a thousand fit); then a `tandem api`
process started on a free port, and once it serves, per rate of `--rates` (10 and 100 calls/s):
  - a WhatIf phase: `--seconds` of WhatIf calls at the rate, open loop (each call is launched
    at its time whether or not the earlier ones answered); latency = call sent → answer
    received, in this process (the server's fold answers it: no Kafka round trip);
  - a PlaceAndConnect phase: the same rate of orders (new workloads, no wait_active), each
    followed by a Release of the oldest workload through the API so the population stays
    steady; latency of the orders = call sent → decision received: gRPC → the server's check →
    tandem.requests → the decider (joint decision, committed with the log) → the server's fold
    → the answer. Releases are timed apart.
Time to active is not measured: it needs a compute and an SDN unit per GÉANT site (80
processes), beyond this machine; tests/integration/api/test_api_active.py covers wait_active.

    tandem bench api [--rates 10,100] [--seconds 20] [--active 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
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

OUT = Path("bench/out/api.json")
TARGETS_P99_MS = {"WhatIf": 20.0, "PlaceAndConnect": 50.0}


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", default=os.environ.get("TANDEM_KAFKA", "127.0.0.1:9092"))
    p.add_argument("--topology", default="data/zoo/Geant2012.graphml")
    p.add_argument("--active", type=int, default=1000)
    p.add_argument("--rates", default="10,100", help="calls per second, one phase pair each")
    p.add_argument("--seconds", type=float, default=20.0, help="per phase")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bw-scale", type=float, default=0.15)
    p.add_argument("--out", default=str(OUT))


def register(sub: Any) -> None:
    p = sub.add_parser("api", help="WhatIf and PlaceAndConnect p50/p99 through the gRPC API on "
                                   "GÉANT at 10 and 100 calls/s")
    add_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


def _summary(lat: list[float], n: int, seconds: float) -> dict[str, Any]:
    return {"calls": n, "answered": len(lat), "calls_per_s": round(n / max(seconds, 1e-9), 1),
            "latency_ms": {"p50": percentile(lat, 0.5), "p90": percentile(lat, 0.9),
                           "p99": percentile(lat, 0.99),
                           "max": max(lat) if lat else float("nan"),
                           "mean": statistics.fmean(lat) if lat else float("nan")}}


async def _open_loop(rate: float, seconds: float, call: Any) -> tuple[list[float], int, float,
                                                                       dict[str, int]]:
    """Launch `call(i)` at `rate` per second for `seconds`; latencies (ms) of the calls that
    succeeded, how many were launched, the sending time, and the errors by code."""
    lat: list[float] = []
    errors: dict[str, int] = {}

    async def one(i: int) -> None:
        t = time.perf_counter()
        try:
            await call(i)
        except Exception as exc:  # a failed call is counted by its code, not timed
            code = getattr(exc, "code", lambda: type(exc).__name__)()
            errors[str(code)] = errors.get(str(code), 0) + 1
            return
        lat.append((time.perf_counter() - t) * 1000)

    n = int(rate * seconds)
    t0 = time.perf_counter()
    tasks = []
    for i in range(n):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    sent = time.perf_counter() - t0
    await asyncio.gather(*tasks)
    return lat, n, sent, errors


def start_api(broker: str, prefix: str, tmp: Path) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tandem.cli", "api", "--listen",
                             "127.0.0.1:0", "--broker", broker, "--topic-prefix", prefix],
                            stdout=subprocess.PIPE, stderr=open(tmp / "api.log", "w"),
                            text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            return proc, int(m.group(1))
    raise RuntimeError(f"tandem api did not start; see {tmp / 'api.log'}")


async def _run(args: argparse.Namespace) -> int:
    import grpc
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from tandem.bench.workers import Workers, inventory_decided
    from tandem.engine.loaders import load_topology
    from tandem.engine.network import Network
    from tandem.engine.workgen import generate
    from tandem.events import new_meta
    from tandem.pbconvert import request_to_pb
    from tandem.services.api.client import until_serving
    from tandem.services.api.stubs import TandemStub
    from tandem.services.kafka_admin import delete_topics_with_prefix, ensure_topics
    from tandem.streams import topics as T
    from tandem.v1 import api_pb2, decision_pb2, workload_pb2

    load0 = round(os.getloadavg()[0], 2)
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    topo = load_topology(args.topology)
    await ensure_topics(args.broker, T.core_topics(prefix))

    def name(base: str) -> str:
        return T.SPECS[base].name(prefix)

    rates = [float(r) for r in args.rates.split(",") if r]
    calls = sum(int(r * args.seconds) for r in rates)
    s = args.bw_scale
    reqs = generate(topo, 20 * args.active + 4 * calls, args.seed, net=Network(topo),
                    bw_low=0.03 * s, bw_high=0.12 * s)
    stream = iter(reqs)
    tmp = Path(tempfile.mkdtemp(prefix="tandem-bench-api-"))
    app_id = f"{prefix}worker"
    workers = Workers(1, args.broker, prefix, tmp, app_id, restart=False, loglevel="warning")
    producer = AIOKafkaProducer(bootstrap_servers=args.broker, acks="all", linger_ms=0)
    consumer = AIOKafkaConsumer(name(T.DECISIONS_BASE), bootstrap_servers=args.broker,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                isolation_level="read_committed", fetch_max_wait_ms=5)
    await producer.start()
    await consumer.start()
    arrived: dict[str, int] = {}
    seen_at: dict[str, float] = {}  # request id → when this process saw its decision on the topic
    api: subprocess.Popen[str] | None = None
    phases: list[dict[str, Any]] = []

    async def collect() -> None:
        async for rec in consumer:
            d = decision_pb2.Decision.FromString(rec.value)
            arrived.setdefault(d.request_id, d.kind)
            seen_at.setdefault(d.request_id, time.perf_counter())

    collector = asyncio.create_task(collect())
    try:
        workers.start_all()
        await inventory_decided(producer, args.broker, prefix, app_id, topo)
        admitted: list[tuple[str, str]] = []  # (tenant, workload id), oldest first
        started = time.perf_counter()
        while len(admitted) < args.active:
            batch = [next(stream) for _ in range(min(200, 2 * (args.active - len(admitted))))]
            for req in batch:
                order = workload_pb2.RequestEvent(meta=new_meta("bench"),
                                                  request_id=req.request_id,
                                                  place=request_to_pb(req))
                await producer.send(name(T.REQUESTS_BASE), key=req.workload_id.encode(),
                                    value=order.SerializeToString())
            await producer.flush()
            deadline = time.monotonic() + 300
            while not all(r.request_id in arrived for r in batch):
                if time.monotonic() > deadline or workers.exits:
                    raise RuntimeError(f"fill stalled; see {tmp}")
                await asyncio.sleep(0.05)
            admitted += [(r.tenant, r.workload_id) for r in batch
                         if arrived[r.request_id] == decision_pb2.DECISION_KIND_PLACED]
        admitted = admitted[: args.active]
        fill_s = time.perf_counter() - started
        print(f"fill: {len(admitted)} workloads active on {Path(args.topology).stem} after "
              f"{fill_s:.1f} s; logs in {tmp}", flush=True)

        # This process's own heap (the generated orders: ~250,000 objects) out of its full
        # collections: their pauses (~100 ms) were timed as the server's latency otherwise.
        gc.collect()
        gc.freeze()
        api, port = start_api(args.broker, prefix, tmp)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await until_serving(channel, timeout=300)
            stub = TandemStub(channel)
            fresh = [request_to_pb(next(stream)) for _ in range(calls * 2)]
            probe = iter(fresh[:calls])
            orders = iter(fresh[calls:])
            for rate in rates:
                whatifs = [next(probe) for _ in range(int(rate * args.seconds))]

                async def whatif(i: int) -> None:
                    await stub.WhatIf(api_pb2.WhatIfRequest(workload=whatifs[i]), timeout=10)

                lat, n, sent, errors = await _open_loop(rate, args.seconds, whatif)
                phases.append({"call": "WhatIf", "rate_target": rate, **_summary(lat, n, sent),
                               "errors": errors})
                _say(phases[-1])
                rel_lat: list[float] = []
                outcomes: dict[str, int] = {}
                releases: list[asyncio.Task[None]] = []
                sent_at: dict[str, float] = {}  # request id → when its call left

                async def place(i: int) -> None:
                    w = next(orders)
                    t = time.perf_counter()
                    try:
                        reply = await stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
                            workload=w, idempotency_key=f"bench-{w.workload_id}"), timeout=10)
                    except grpc.aio.AioRpcError as err:
                        if err.code() != grpc.StatusCode.FAILED_PRECONDITION:
                            raise
                        outcomes["REJECTED"] = outcomes.get("REJECTED", 0) + 1
                        return  # a decision too (timed): the engine found no room
                    sent_at[reply.request_id] = t
                    k = decision_pb2.DecisionKind.Name(reply.decision.kind)
                    k = k.removeprefix("DECISION_KIND_")
                    outcomes[k] = outcomes.get(k, 0) + 1
                    admitted.append((w.tenant, w.workload_id))
                    releases.append(asyncio.create_task(release()))  # population stays steady

                async def release() -> None:
                    tenant, wid = admitted.pop(0)
                    t = time.perf_counter()
                    try:
                        await stub.Release(api_pb2.ReleaseWorkloadRequest(
                            release=workload_pb2.ReleaseRequest(tenant=tenant, workload_id=wid),
                            idempotency_key=f"bench-release-{wid}"), timeout=10)
                        rel_lat.append((time.perf_counter() - t) * 1000)
                    except grpc.aio.AioRpcError:
                        pass

                lat, n, sent, errors = await _open_loop(rate, args.seconds, place)
                await asyncio.gather(*releases)
                # The same decisions as this process saw them on tandem.decisions: the decision
                # path (API check and send, Kafka, the decider) without the server's fold.
                topic = [(seen_at[r] - t) * 1000 for r, t in sent_at.items() if r in seen_at]
                phases.append({"call": "PlaceAndConnect", "rate_target": rate,
                               **_summary(lat, n, sent), "outcomes": outcomes, "errors": errors,
                               "release_latency_ms_p50": percentile(rel_lat, 0.5),
                               "on_decisions_topic_ms": {"p50": percentile(topic, 0.5),
                                                         "p90": percentile(topic, 0.9),
                                                         "p99": percentile(topic, 0.99),
                                                         "max": max(topic, default=0.0),
                                                         "n": len(topic)}})
                _say(phases[-1])
    finally:
        collector.cancel()
        if api is not None and api.poll() is None:
            api.send_signal(signal.SIGTERM)
            try:
                api.wait(30)
            except subprocess.TimeoutExpired:
                api.kill()
        workers.stop_all()
        await consumer.stop()
        await producer.stop()
        await delete_topics_with_prefix(args.broker, prefix)
    result = {"topology": Path(args.topology).stem, "sites": len(topo.sites),
              "active_workloads": args.active, "seconds_per_phase": args.seconds,
              "phases": phases, "targets_p99_ms": TARGETS_P99_MS, "fill_seconds": round(fill_s, 1),
              "time_to_active": "not measured (needs a compute and an SDN unit per site)",
              "load_average_1m_start_end": [load0, round(os.getloadavg()[0], 2)],
              "command": "tandem bench api " + " ".join(sys.argv[3:])}
    _table(phases)
    print(f"load average (1 min) at start/end: {result['load_average_1m_start_end']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


def _say(ph: dict[str, Any]) -> None:
    lm = ph["latency_ms"]
    topic = ph.get("on_decisions_topic_ms")
    also = (f"; on tandem.decisions: p50 {topic['p50']:.1f} ms, p90 {topic['p90']:.1f} ms, "
            f"p99 {topic['p99']:.1f} ms, max {topic['max']:.1f} ms" if topic else "")
    print(f"  {ph['call']:<16}{ph['rate_target']:>6.0f}/s: p50 {lm['p50']:.1f} ms, p99 "
          f"{lm['p99']:.1f} ms ({ph['answered']} of {ph['calls']} answered){also}", flush=True)


def _table(phases: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="tandem bench api (latency through gRPC, ms)")
    for col in ("call", "rate/s", "sent/s", "answered", "p50", "p90", "p99", "max", "target"):
        t.add_column(col, justify="left" if col in ("call", "target") else "right")
    for ph in phases:
        lm = ph["latency_ms"]
        tgt = TARGETS_P99_MS[ph["call"]]
        ok = lm["p99"] <= tgt and ph["answered"] == ph["calls"]
        t.add_row(ph["call"], f"{ph['rate_target']:.0f}", f"{ph['calls_per_s']:.1f}",
                  f"{ph['answered']}/{ph['calls']}", f"{lm['p50']:.1f}", f"{lm['p90']:.1f}",
                  f"{lm['p99']:.1f}", f"{lm['max']:.1f}",
                  ("met" if ok else "NOT met") + f" (p99 <= {tgt:.0f})")
    Console(width=120).print(t)
