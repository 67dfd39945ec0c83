"""`tandem export`: publish telemetry from a replay file or live interface counters.

    tandem export --file samples.csv [--rate 1000] [--count N] [--retime]
    tandem export --interfaces veth-ab,veth-ac --map veth-ab=ab:ams --map veth-ac=ac:ams
    tandem export --ovs --map-file links.map --interval 2 --count 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("export", help="publish telemetry (replay file, host/OVS counters)",
                              description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--file", help="CSV (.csv) or JSON-lines replay file")
    src.add_argument("--interfaces", help="comma-separated host interfaces (/sys/class/net)")
    src.add_argument("--ovs", action="store_true", help="the mapped OVS interfaces' counters")
    p.add_argument("--map", action="append", default=[], metavar="IF=LINK:FROM_SITE",
                   help="interface to link direction (repeatable)")
    p.add_argument("--map-file", help="file of 'interface link_id from_site' lines")
    p.add_argument("--broker", default=os.environ.get("TANDEM_KAFKA", "127.0.0.1:9092"))
    p.add_argument("--topic-prefix", default=os.environ.get("TANDEM_TOPIC_PREFIX", ""))
    p.add_argument("--interval", type=float, default=1.0,
                   help="seconds between counter readings (default 1)")
    p.add_argument("--count", type=int, default=0,
                   help="file: at most N samples; counters: N readings (0 = all / forever)")
    p.add_argument("--rate", type=float, default=0.0,
                   help="file: samples per second (0 = as fast as possible)")
    p.add_argument("--retime", action="store_true",
                   help="file: shift sample times so the first one is now (keeps spacing)")
    p.add_argument("--encoding", choices=("auto", "json"), default="auto",
                   help="auto: protobuf for complete samples, flat JSON otherwise; json: always")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from tandem.cli import UserError
    from tandem.services.exporter import ExportError

    try:
        n = asyncio.run(_run(args))
    except ExportError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"broker {args.broker}: {exc}") from None
    print(f"exported {n} samples", file=sys.stderr)
    return 0


async def _run(args: argparse.Namespace) -> int:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    from tandem.services import exporter as X
    from tandem.streams import topics as T

    topic = T.SPECS[T.TELEMETRY_BASE].name(args.topic_prefix)
    force_json = args.encoding == "json"
    readings: list[Any] = []
    if args.file:
        readings = X.read_replay(args.file)  # validated whole before anything is sent
        if args.count:
            readings = readings[:args.count]
        if args.retime:
            shift = time.time() - min(r.t for r in readings)
            for r in readings:
                r.t += shift
    else:
        mapping = X.parse_mapping(args.map, args.map_file)
        ifaces = sorted(mapping)
        if args.interfaces:
            wanted = [i for i in args.interfaces.split(",") if i]
            unmapped = sorted(set(wanted) - set(mapping))
            if unmapped:
                raise X.ExportError(f"interface {unmapped[0]!r} has no --map entry")
            ifaces = wanted
            X.host_counters(ifaces)  # fail now on a missing interface
        else:
            X.ovs_counters(ifaces)
    from tandem.streams import compat

    compat.apply_all()  # workarounds of aiokafka behaviour, at this process's start
    producer = AIOKafkaProducer(bootstrap_servers=args.broker, acks="all", linger_ms=5)
    try:
        await asyncio.wait_for(producer.start(), 20)
    except (KafkaError, asyncio.TimeoutError) as exc:
        await producer.stop()
        raise X.ExportError(f"cannot reach the broker at {args.broker}: {exc!r}") from None
    sent = 0
    try:
        if args.file:
            start = time.monotonic()
            for r in readings:
                rec = X.encode(r, force_json)
                await producer.send(topic, key=rec.key, value=rec.value)
                sent += 1
                if args.rate > 0:
                    ahead = sent / args.rate - (time.monotonic() - start)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
        else:
            rates = X.CounterRates({i: mapping[i] for i in ifaces})
            rounds = 0
            while True:
                snap = (X.host_counters(ifaces) if args.interfaces else X.ovs_counters(ifaces))
                for r in rates.readings(snap, time.time()):
                    rec = X.encode(r, force_json)
                    await producer.send(topic, key=rec.key, value=rec.value)
                    sent += 1
                rounds += 1
                # N readings give N-1 rates: read once more than --count.
                if args.count and rounds > args.count:
                    break
                await asyncio.sleep(args.interval)
        await producer.flush()
    finally:
        await producer.stop()
    return sent
