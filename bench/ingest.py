"""Benchmark: telemetry ingest of ONE Faust worker against the real broker.

Protocol:
1. fresh prefixed topics; the GÉANT 2012 inventory (40 sites, 62 links) is published and a
   first worker folds it (into the inventory table's changelog), then stops;
2. throughput: N protobuf `LinkSample`s (random link, direction and values; ~10 % of the
   links run above their latency SLA so the hysteresis path and transitions are exercised)
   are pre-produced; a new worker (this process, one core) recovers the inventory from the
   changelog and folds the backlog; events/s = records / (last fold end - first fold start),
   also per CPU-second of this process;
3. lag: with the worker caught up, a producer in a *separate process* sends samples at
   `--rate` events/s for `--seconds` s (batched per partition every 10 ms) while also
   re-publishing link inventory (capacity changes, `--inventory-rate`/s) so the topology is
   kept current; lag = time the sample's link is written to the `link_metrics` table - Kafka
   record timestamp (set by the producer), per record; p50/p99/max, and the part of it
   before the fold got the record ("fetch").

The machine is shared: the 1-minute load average at start and end is recorded.

    python -m tandem.bench.ingest            # or: tandem bench ingest
    python -m tandem.bench.ingest --events 200000 --rate 20000 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

OUT = Path("bench/out/ingest.json")
TOPOLOGY = "data/zoo/Geant2012.graphml"


def inventory_events(path: str) -> list[tuple[bytes, bytes]]:
    """(key, InventoryEvent bytes) for every site then every link of a topology file."""
    from tandem.engine.loaders import load_topology
    from tandem.events import new_meta
    from tandem.v1 import common_pb2, inventory_pb2 as K

    topo = load_topology(path)
    out: list[tuple[bytes, bytes]] = []
    for s in topo.sites.values():
        ev = K.InventoryEvent(meta=new_meta("bench/ingest"), site=K.Site(
            site_id=s.site_id, name=s.name, jurisdiction=s.jurisdiction,
            location=common_pb2.Location(latitude=s.latitude, longitude=s.longitude),
            capacity=K.ComputeCapacity(vcpus=s.vcpus, memory_gib=s.memory_gib,
                                       storage_gib=s.storage_gib),
            state=K.SITE_STATE_ACTIVE))
        out.append((f"site/{s.site_id}".encode(), ev.SerializeToString()))
    for ln in topo.links.values():
        out.append((f"link/{ln.link_id}".encode(), _link_event(ln, 1.0).SerializeToString()))
    return out


def _link_event(ln: Any, factor: float) -> Any:
    from tandem.events import new_meta
    from tandem.v1 import inventory_pb2 as K

    return K.InventoryEvent(meta=new_meta("bench/ingest"), link=K.Link(
        link_id=ln.link_id, site_a=ln.a, site_b=ln.b,
        capacity_ab_mbps=ln.capacity_ab_mbps * factor,
        capacity_ba_mbps=ln.capacity_ba_mbps * factor, latency_ms=ln.latency_ms, loss=ln.loss,
        kind=K.LINK_KIND_FIBRE, admin_state=K.ADMIN_STATE_ENABLED))


def _sample(rng: random.Random, links: list[Any], t: float) -> tuple[bytes, bytes]:
    from tandem.events import new_meta
    from tandem.v1 import telemetry_pb2 as tm

    ln = links[rng.randrange(len(links))]
    frm = ln.a if rng.random() < 0.5 else ln.b
    cap = ln.capacity_ab_mbps if frm == ln.a else ln.capacity_ba_mbps
    hot = zlib.crc32(ln.link_id.encode()) % 10 == 0  # ~10 % of links out of band (latency)
    s = tm.TelemetrySample(meta=new_meta("bench/ingest", at=t), link=tm.LinkSample(
        link_id=ln.link_id, from_site=frm, utilisation_mbps=cap * rng.uniform(0.1, 0.7),
        latency_ms=(ln.latency_ms * 2 + 10.0 if hot else ln.latency_ms) + rng.uniform(0, 1),
        loss=rng.uniform(0, 0.002)))
    return ln.link_id.encode(), s.SerializeToString()


async def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20,
                                max_batch_size=256 * 1024)
    await producer.start()
    try:
        futs = []
        for k, v in records:
            futs.append(await producer.send(topic, key=k, value=v))
            if len(futs) >= 5000:
                await asyncio.gather(*futs)
                futs.clear()
        await asyncio.gather(*futs)
    finally:
        await producer.stop()


async def _rate_produce(bootstrap: str, prefix: str, topology: str, rate: float,
                        seconds: float, seed: int, inventory_rate: float = 10.0) -> int:
    """Paced producer (run in its own process): telemetry at `rate`/s plus `inventory_rate`
    link updates (capacity changes) per second.

    Payloads are generated before the clock starts and sent every 10 ms as one batch per
    partition (aiokafka `send_batch`), with the record timestamp set at that moment: the
    Python producer's per-message `send` alone cannot sustain 20,000/s on this machine.
    """
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import murmur2

    from tandem.engine.loaders import load_topology
    from tandem.streams import topics as T

    links = list(load_topology(topology).links.values())
    rng = random.Random(seed)
    spec = T.SPECS[T.TELEMETRY_BASE]
    tel, parts = spec.name(prefix), spec.partitions
    inv = T.SPECS[T.INVENTORY_BASE].name(prefix)
    total = int(rate * seconds)
    t_start = time.time() + 1.0
    payloads = [_sample(rng, links, t_start + i / rate) for i in range(total)]
    part_of = [(murmur2(k) & 0x7FFFFFFF) % parts for k, _ in payloads]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0)
    await producer.start()
    sent = 0
    try:
        start = time.monotonic()
        next_inv = start
        while sent < total:
            el = time.monotonic() - start
            due = min(total, int(el * rate))
            if due > sent:
                ts = int(time.time() * 1000)
                batches: dict[int, Any] = {}
                for i in range(sent, due):
                    b = batches.get(part_of[i])
                    if b is None:
                        b = batches[part_of[i]] = producer.create_batch()
                    k, v = payloads[i]
                    if b.append(key=k, value=v, timestamp=ts) is None:  # full: send, renew
                        await producer.send_batch(b, tel, partition=part_of[i])
                        b = batches[part_of[i]] = producer.create_batch()
                        b.append(key=k, value=v, timestamp=ts)
                for part, b in batches.items():
                    await producer.send_batch(b, tel, partition=part)
                sent = due
            if inventory_rate > 0 and time.monotonic() >= next_inv:
                ln = links[rng.randrange(len(links))]
                await producer.send(inv, key=f"link/{ln.link_id}".encode(),
                                    value=_link_event(ln, rng.uniform(0.8, 1.2)).SerializeToString())
                next_inv += 1.0 / inventory_rate
            await asyncio.sleep(0.01)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def run(bootstrap: str, events: int, rate: float, seconds: float, seed: int,
              topology: str, inventory_rate: float = 10.0) -> dict[str, Any]:
    from tandem.engine.loaders import load_topology
    from tandem.services.kafka_admin import delete_topics_with_prefix, ensure_topics
    from tandem.streams import topics as T
    from tandem.streams.agents import telemetry as telemetry_agent
    from tandem.streams.app import create_app
    from tandem.streams.settings import Settings

    load0 = round(os.getloadavg()[0], 2)  # the machine is shared: say how busy it was
    prefix = f"bench-ingest-{uuid.uuid4().hex[:8]}."
    specs = T.core_topics(prefix)
    await ensure_topics(bootstrap, specs)
    topo = load_topology(topology)
    links = list(topo.links.values())
    rng = random.Random(seed)
    inv = inventory_events(topology)
    await _produce(bootstrap, T.SPECS[T.INVENTORY_BASE].name(prefix), inv)
    settings = Settings(broker=bootstrap, topic_prefix=prefix, app_id=f"{prefix}app",
                        web_enabled=False, data_dir=tempfile.mkdtemp(prefix="tandem-bench-"))
    # First start: the worker folds the inventory (into the inventory table's changelog).
    tandem = create_app(settings)
    telemetry_agent.install(tandem)
    await tandem.app.start()
    try:
        deadline = time.monotonic() + 60
        while len(list(tandem.tables["inventory"].keys())) < len(inv):
            if time.monotonic() > deadline:
                raise SystemExit("inventory not folded within 60 s")
            await asyncio.sleep(0.1)
    finally:
        await tandem.app.stop()
    t0 = time.time() - events / 20000.0  # sample times spread as if sent at 20k/s
    t_prod = time.perf_counter()
    samples = [_sample(rng, links, t0 + i / 20000.0) for i in range(events)]
    await _produce(bootstrap, T.SPECS[T.TELEMETRY_BASE].name(prefix), samples)
    produce_s = time.perf_counter() - t_prod
    del samples

    # Restart with a backlog: the inventory is recovered from its changelog before the
    # telemetry consumer starts, then the backlog is folded.
    tandem = create_app(replace(settings, data_dir=tempfile.mkdtemp(prefix="tandem-bench-")))
    fold = telemetry_agent.install(tandem).fold
    loop_stats = tandem.loops["telemetry"].stats
    st = fold.stats
    first: list[float] = []
    fetch_lags: list[float] = []
    orig = fold.process

    async def timed(evs: list[Any]) -> list[Any]:  # wall and CPU time of the first batch start
        if not first:
            first.extend((time.perf_counter(), time.process_time()))
        if st.record_lags:  # produce -> handed to the fold (fetch and queueing part of lag)
            now = time.time()
            fetch_lags.extend(now - rec[5] for rec in evs)
        return await orig(evs)

    fold.process = timed  # type: ignore[method-assign]
    cpu0 = time.process_time()
    await tandem.app.start()
    result: dict[str, Any] = {"mode": "transactional loop", "topology": topology, "links": len(links), "sites": len(topo.sites),
                              "events": events, "produce_backlog_s": round(produce_s, 2)}
    try:
        deadline = time.monotonic() + 120 + events / 5000
        while st.records < events and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        done, cpu_done = time.perf_counter(), time.process_time()
        cpu = cpu_done - cpu0
        if st.records < events:
            raise SystemExit(f"worker folded only {st.records} of {events} records in time")
        thr = events / (done - first[0])
        result.update(backlog_events_per_s=round(thr), backlog_wall_s=round(done - first[0], 2),
                      backlog_events_per_cpu_s=round(events / (cpu_done - first[1])),
                      worker_cpu_s_incl_startup=round(cpu, 2), batches=st.batches,
                      table_writes=st.table_writes, transitions=st.transitions,
                      dead_letters=st.dead_letters)
        # Lag phase: paced producer in another process, worker caught up.
        st.lags = type(st.lags)("d")
        st.record_lags = True
        base = st.records
        cpu_lag0, wall_lag0 = time.process_time(), time.perf_counter()
        loop_stats.commit_s_max = 0.0
        proc = subprocess.Popen([sys.executable, "-m", "tandem.bench.ingest", "--_produce",
                                 "--broker", bootstrap, "--_prefix", prefix, "--rate", str(rate),
                                 "--seconds", str(seconds), "--seed", str(seed + 1),
                                 "--inventory-rate", str(inventory_rate),
                                 "--topology", topology], stdout=subprocess.PIPE, text=True)
        while proc.poll() is None:
            await asyncio.sleep(0.1)
        sent = int((proc.stdout.read() if proc.stdout else "0").strip() or 0)
        deadline = time.monotonic() + 30
        while st.records - base < sent and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        lags = list(st.lags)
        worker_share = (time.process_time() - cpu_lag0) / (time.perf_counter() - wall_lag0)
        result.update(lag_rate_target=rate, lag_seconds=seconds, lag_sent=sent,
                      lag_inventory_updates_per_s=inventory_rate,
                      lag_worker_cpu_share=round(worker_share, 2),
                      commit_s_max=round(loop_stats.commit_s_max, 3),
                      lag_folded=st.records - base,
                      lag_p50_ms=round(_pct(lags, 0.50) * 1000, 1),
                      lag_p99_ms=round(_pct(lags, 0.99) * 1000, 1),
                      lag_max_ms=round(max(lags) * 1000, 1) if lags else None,
                      fetch_lag_p50_ms=round(_pct(fetch_lags, 0.50) * 1000, 1),
                      fetch_lag_p99_ms=round(_pct(fetch_lags, 0.99) * 1000, 1))
        result["transitions_total"] = st.transitions
        result["dead_letters_total"] = st.dead_letters
        lm = tandem.tables["link_metrics"]
        result["link_metrics_entries"] = len(list(lm.keys()))
    finally:
        await tandem.app.stop()
        await delete_topics_with_prefix(bootstrap, prefix)
    result["load_average_1m_start_end"] = [load0, round(os.getloadavg()[0], 2)]
    result["cpus"] = os.cpu_count()
    result["target"] = {"events_per_s": 20000, "p99_lag_ms": 1000}
    result["meets_target"] = (result["backlog_events_per_s"] >= 20000
                              and result["lag_p99_ms"] < 1000
                              and result["lag_folded"] >= result["lag_sent"])
    return result


def _print(r: dict[str, Any]) -> None:
    rows = [("mode", r["mode"]), ("topology", f"{Path(r['topology']).name} ({r['sites']} sites, {r['links']} links)"),
            ("backlog events", r["events"]),
            ("backlog throughput", f"{r['backlog_events_per_s']} events/s "
                                   f"({r['backlog_wall_s']} s, {r['batches']} batches)"),
            ("table writes", r["table_writes"]),
            ("backlog per CPU second", f"{r['backlog_events_per_cpu_s']} events/cpu-s"),
            ("transitions published", f"{r['transitions']} in backlog, "
                                      f"{r['transitions_total']} in total"),
            ("dead letters", r["dead_letters_total"]),
            ("paced rate", f"{r['lag_rate_target']:g}/s for {r['lag_seconds']:g} s "
                           f"(sent {r['lag_sent']}, folded {r['lag_folded']}), "
                           f"{r['lag_inventory_updates_per_s']:g} inventory updates/s"),
            ("worker CPU while paced", f"{r['lag_worker_cpu_share']:.0%} of one core"),
            ("lag p50 / p99 / max", f"{r['lag_p50_ms']} / {r['lag_p99_ms']} / "
                                    f"{r['lag_max_ms']} ms"),
            ("of which fetch p50 / p99", f"{r['fetch_lag_p50_ms']} / {r['fetch_lag_p99_ms']} ms"),
            ("load average (1 min)", f"{r['load_average_1m_start_end'][0]} at start, "
                                     f"{r['load_average_1m_start_end'][1]} at end, "
                                     f"{r['cpus']} CPUs"),
            ("target", "≥ 20000 events/s, p99 lag < 1000 ms"),
            ("meets target", r["meets_target"])]
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", default=os.environ.get("TANDEM_KAFKA", "127.0.0.1:9092"))
    p.add_argument("--events", type=int, default=200_000, help="backlog size (default 200000)")
    p.add_argument("--rate", type=float, default=20_000, help="paced rate for the lag phase")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the lag phase")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--topology", default=TOPOLOGY)
    p.add_argument("--inventory-rate", type=float, default=10.0,
                   help="link inventory updates per second during the lag phase (default 10)")
    p.add_argument("--out", default=str(OUT))


def handler(args: argparse.Namespace) -> int:
    import logging

    logging.getLogger("faust").setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("tandem.streams.agents.telemetry").setLevel(logging.WARNING)
    r = asyncio.run(run(args.broker, args.events, args.rate, args.seconds, args.seed,
                        args.topology, args.inventory_rate))
    _print(r)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(r, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("ingest", help="telemetry ingest of one worker (events/s, lag)")
    _add_args(p)
    p.set_defaults(func=handler)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tandem.bench.ingest", description=__doc__)
    _add_args(p)
    p.add_argument("--_produce", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_prefix", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._produce:
        print(asyncio.run(_rate_produce(args.broker, args._prefix, args.topology, args.rate,
                                        args.seconds, args.seed, args.inventory_rate)))
        return 0
    import logging

    logging.basicConfig(level=logging.WARNING)
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
