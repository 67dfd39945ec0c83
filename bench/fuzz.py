"""Benchmark / soak: hostile input on every input topic of a real worker.

Protocol: fresh prefixed topics; `--workers` real `tandem worker` processes (restarted by this
benchmark if one exits, and counted); the demo federation's inventory published and folded;
then the workers are stopped and, on each input topic (inventory, link state, requests,
telemetry, the decider log), `--per-class` records of each bad class
(`tandem.bench.fuzz_cases.CLASSES`: random bytes, empty, wrong message type, unknown schema
version, NaN / negative / huge / infinite numbers, unknown ids, reused event ids, ~1 MB
payloads) are sent, then `--valid` valid place requests: a backlog. Drain time runs from the
workers' start until every worker loop has committed every input record (inputs and their
outputs are committed together, so nothing more can appear after that); it includes their
start-up. `--live` sends to running workers instead (drain from the last record sent).

Per class: sent, dead-lettered exactly once, dead-lettered more than once, accepted (not
dead-lettered but decided or forwarded as valid), lost (neither). Valid requests: decided once,
lost, decided more than once. A dead letter is tied to the record sent by its origin (topic,
partition, offset) or — for records the decider refuses after an input handler forwarded them
— by the tag inside the forwarded event.

    tandem bench fuzz [--per-class 2000] [--valid 200] [--workers 1]

Target (issue 9): with 2,000 records of each class on each input topic, 100 % of bad records
dead-lettered exactly once, 0 worker exits, 0 valid requests lost, drained in ≤ 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

OUT = Path("bench/out/fuzz.json")
TARGET_DRAIN_S = 60.0


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", default=os.environ.get("TANDEM_KAFKA", "127.0.0.1:9092"))
    p.add_argument("--per-class", type=int, default=2000, help="bad records per class and topic")
    p.add_argument("--valid", type=int, default=200, help="valid place requests sent after")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--timeout", type=float, default=600.0, help="bound on the drain wait (s)")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--keep-topics", action="store_true")
    p.add_argument("--live", action="store_true",
                   help="send to running workers (default: a backlog, then start them)")


def register(sub: Any) -> None:
    p = sub.add_parser("fuzz", help="every class of bad input on every input topic: dead-lettered "
                                    "once, nothing lost, no worker exit")
    add_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    result = asyncio.run(fuzz(args))
    _print(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten {out}")
    return 0 if result["meets_target"] else 1


async def fuzz(args: argparse.Namespace) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    from tandem.bench import fuzz_cases as F
    from tandem.bench.workers import Workers
    from tandem.inventory import inventory_key
    from tandem.services.demo_data import demo_federation
    from tandem.services.kafka_admin import delete_topics_with_prefix, ensure_topics
    from tandem.streams import topics as T

    load0 = round(os.getloadavg()[0], 2)
    prefix = f"bench-fuzz-{uuid.uuid4().hex[:8]}."
    name = lambda base: T.SPECS[base].name(prefix)  # noqa: E731
    await ensure_topics(args.broker, T.core_topics(prefix))
    tmp = Path(tempfile.mkdtemp(prefix="tandem-fuzz-"))
    producer = AIOKafkaProducer(bootstrap_servers=args.broker, acks="all", linger_ms=5,
                                max_request_size=2 * 1024 * 1024, max_batch_size=1024 * 1024)
    await producer.start()
    result: dict[str, Any] = {"per_class": args.per_class, "valid_requests": args.valid,
                              "workers": args.workers, "worker_logs": str(tmp)}
    try:
        async with Workers(args.workers, args.broker, prefix, tmp, f"{prefix}fuzz") as workers:
            inventory = demo_federation()
            for ev in inventory:
                await producer.send(name(T.INVENTORY_BASE), key=inventory_key(ev).encode(),
                                    value=ev.SerializeToString())
            await producer.flush()
            await _settled(args.broker, prefix, f"{prefix}fuzz", args.timeout)
            ctx = F.Context(
                sites=[e.site.site_id for e in inventory if e.HasField("site")],
                links=[(e.link.link_id, e.link.site_a, e.link.site_b)
                       for e in inventory if e.HasField("link")],
                used_ids=[e.meta.event_id for e in inventory])
            import random
            ctx.rng = random.Random(args.seed)
            if not args.live:
                workers.stop_all()
            # origin (topic, partition, offset) -> (topic base, class, tag)
            sent: dict[tuple[str, int, int], tuple[str, str, str]] = {}
            t_send = time.monotonic()
            for base in F.TOPICS:
                for cls in F.CLASSES:
                    if (base, cls) in F.NOT_APPLICABLE:
                        continue
                    recs = F.bad_records(base, cls, args.per_class, ctx)
                    futs = [await producer.send(name(base), key=key, value=value,
                                                partition=0 if base == T.CONTROL_BASE else None)
                            for key, value, _ in recs]
                    for md, (_, _, tag) in zip(await asyncio.gather(*futs), recs):
                        sent[(name(base), md.partition, md.offset)] = (base, cls, tag)
                    print(f"sent {len(recs):>6} {cls:<15} to {name(base)}", flush=True)
            valid = [F.request(ctx, i, tag="valid") for i in range(args.valid)]
            for v in valid:
                await producer.send(name(T.REQUESTS_BASE), key=v.place.workload_id.encode(),
                                    value=v.SerializeToString())
            await producer.flush()
            send_s = time.monotonic() - t_send
            drain_started = time.monotonic()
            if not args.live:
                print(f"backlog of {len(sent) + len(valid)} records sent in {send_s:.0f} s; "
                      f"starting {args.workers} worker(s)", flush=True)
                workers.start_all()
            drained = True
            try:
                await _settled(args.broker, prefix, f"{prefix}fuzz", args.timeout)
            except TimeoutError as exc:
                drained = False
                print(f"NOT DRAINED: {exc}", flush=True)
            drain_s = time.monotonic() - drain_started
            result.update(await _account(args.broker, prefix, sent, valid))
            result.update(send_s=round(send_s, 1), drain_s=round(drain_s, 1), drained=drained,
                          mode="live" if args.live else "backlog",
                          worker_exits=len(workers.exits), worker_exit_codes=workers.exits)
    finally:
        await producer.stop()
        if not args.keep_topics:
            await delete_topics_with_prefix(args.broker, prefix)
    per = result["classes"]
    bad_total = sum(r["sent"] for r in per)
    once_total = sum(r["dead_lettered_once"] for r in per)
    result.update(bad_records=bad_total, dead_lettered_once=once_total,
                  load_average_1m_start_end=[load0, round(os.getloadavg()[0], 2)],
                  cpus=os.cpu_count(),
                  target={"dead_lettered_once": "100 %", "worker_exits": 0, "valid_lost": 0,
                          "drain_s": TARGET_DRAIN_S})
    result["meets_target"] = (result["drained"] and once_total == bad_total
                              and result["worker_exits"] == 0 and result["valid_lost"] == 0
                              and result["valid_duplicated"] == 0
                              and result["drain_s"] <= TARGET_DRAIN_S)
    return result


async def _settled(broker: str, prefix: str, app_id: str, timeout: float) -> None:
    """Until every loop of the workers has committed every record of its input topics."""
    from tandem.streams import topics as T
    from tandem.streams.readback import wait_committed

    loops = {"decider-inputs": (T.INVENTORY_BASE, T.REQUESTS_BASE, T.LINK_STATE_BASE,
                                T.CONTROL_BASE),
             "noc": (T.DECISIONS_BASE, T.ALARMS_BASE), "telemetry": (T.TELEMETRY_BASE,)}
    deadline = time.monotonic() + timeout
    # Telemetry transitions feed the decider, whose outputs feed the NOC loop.
    for loop in ("decider-inputs", "telemetry", "decider-inputs", "noc"):
        topics = [T.SPECS[b].name(prefix) for b in loops[loop]]
        await wait_committed(broker, f"{app_id}.{loop}", topics,
                             max(1.0, deadline - time.monotonic()))


async def _account(broker: str, prefix: str,
                   sent: dict[tuple[str, int, int], tuple[str, str, str]],
                   valid: list[Any]) -> dict[str, Any]:
    """Ties every dead letter to the record sent, and counts the outcome of each record."""
    from tandem.bench.fuzz_cases import tag_of
    from tandem.streams import topics as T
    from tandem.streams.readback import read_all_partitions
    from tandem.v1 import alarms_pb2, decider_pb2, decision_pb2

    def tag_in(payload: bytes) -> str:
        try:
            return tag_of(decider_pb2.DeciderInput.FromString(payload))
        except Exception:  # not a decider input
            return ""

    letters = [alarms_pb2.DeadLetter.FromString(r.value)
               for r in await read_all_partitions(broker, T.SPECS[T.DEAD_LETTERS_BASE].name(prefix))]
    by_origin: Counter[tuple[str, int, int]] = Counter()
    by_tag: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    unmatched = 0
    tags = {tag for _, _, tag in sent.values() if tag}
    for d in letters:
        origin = (d.origin_topic, d.origin_partition, d.origin_offset)
        reasons[d.reason] += 1
        if origin in sent:
            by_origin[origin] += 1
            continue
        # Refused by the decider after an input handler forwarded it: tied by its tag.
        tag = tag_in(d.payload) if d.origin_topic.endswith(T.DECIDER_BASE) else ""
        if tag in tags:
            by_tag[tag] += 1
        else:
            unmatched += 1
    decisions = [decision_pb2.Decision.FromString(r.value)
                 for r in await read_all_partitions(broker, T.SPECS[T.DECISIONS_BASE].name(prefix))]
    decided = Counter(d.request_id for d in decisions)
    forwarded = {tag_in(r.value)
                 for r in await read_all_partitions(broker, T.SPECS[T.DECIDER_BASE].name(prefix))}
    rows: dict[tuple[str, str], Counter[str]] = {}
    for origin, (base, cls, tag) in sent.items():
        row = rows.setdefault((base, cls), Counter())
        row["sent"] += 1
        n = by_origin[origin] + (by_tag[tag] if tag else 0)
        if n == 1:
            row["dead_lettered_once"] += 1
        elif n > 1:
            row["dead_lettered_more"] += 1
        elif tag and (decided[tag.removeprefix("request:")] or
                      tag in forwarded):
            row["accepted"] += 1  # folded as if valid
        else:
            row["lost"] += 1
    classes = [{"topic": base, "class": cls, "sent": c["sent"],
                "dead_lettered_once": c["dead_lettered_once"],
                "dead_lettered_more": c["dead_lettered_more"], "accepted": c["accepted"],
                "lost": c["lost"]} for (base, cls), c in sorted(rows.items())]
    v_ids = [v.request_id for v in valid]
    return {"classes": classes, "dead_letters_total": len(letters),
            "dead_letters_unmatched": unmatched, "reasons": dict(sorted(reasons.items())),
            "valid_decided_once": sum(decided[r] == 1 for r in v_ids),
            "valid_lost": sum(decided[r] == 0 for r in v_ids),
            "valid_duplicated": sum(decided[r] > 1 for r in v_ids)}


def _print(r: dict[str, Any]) -> None:
    from tandem.services.render import table

    rows = [(c["topic"].removeprefix("tandem."), c["class"], c["sent"], c["dead_lettered_once"],
             c["dead_lettered_more"], c["accepted"], c["lost"]) for c in r["classes"]]
    print(table(("topic", "class", "sent", "dead-lettered once", "more than once", "accepted",
                 "lost"), rows))
    print(f"\nbad records: {r['bad_records']}, dead-lettered exactly once: "
          f"{r['dead_lettered_once']} ({100.0 * r['dead_lettered_once'] / max(1, r['bad_records']):.2f} %)")
    print(f"dead letters on the topic: {r['dead_letters_total']} (not matched to a record sent: "
          f"{r['dead_letters_unmatched']}); reasons: {r['reasons']}")
    print(f"valid requests: {r['valid_requests']} sent, {r['valid_decided_once']} decided once, "
          f"{r['valid_lost']} lost, {r['valid_duplicated']} decided more than once")
    print(f"worker exits: {r['worker_exits']} {r['worker_exit_codes'] or ''}")
    what = ("from the workers' start, backlog" if r["mode"] == "backlog"
            else "from the last record sent")
    print(f"send {r['send_s']} s; drain {r['drain_s']} s {what} (target <= {TARGET_DRAIN_S:.0f} s)"
          + ("" if r["drained"] else " — NOT DRAINED"))
    print(f"load average (1 min) at start/end: {r['load_average_1m_start_end']}")
    print("MEETS TARGET" if r["meets_target"] else "DOES NOT MEET TARGET")
