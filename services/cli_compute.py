"""`tandem compute --site X --driver sim|vsphere|libvirt`: one site's compute control unit.

    tandem compute --site ams --driver sim [--vcpus 512 --memory-gib 2048] [--pidfile F]

Consumes the site's compute commands, drives the site's hypervisor, acknowledges each command
and publishes the site's free capacity (`tandem.services.compute.unit`). SIGTERM or Ctrl-C
stops it cleanly (what it fetched is acknowledged first).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("compute", help="one site's compute control unit (hypervisor driver)")
    p.add_argument("--site", required=True)
    p.add_argument("--driver", choices=("sim",), default="sim",
                   help="the site's hypervisor (sim: in memory, for the demo and tests)")
    p.add_argument("--broker", default=os.environ.get("TANDEM_KAFKA", "127.0.0.1:9092"))
    p.add_argument("--topic-prefix", dest="topic_prefix",
                   default=os.environ.get("TANDEM_TOPIC_PREFIX", ""))
    p.add_argument("--vcpus", type=float, default=512.0, help="sim: capacity")
    p.add_argument("--memory-gib", type=float, default=2048.0, help="sim: capacity")
    p.add_argument("--fail", default="", help="sim: comma-separated VM names whose creation fails")
    p.add_argument("--capacity-interval", type=float, default=10.0)
    p.add_argument("--pidfile")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tandem.services.compute.sim import SimConfig, SimDriver
    from tandem.services.compute.unit import ComputeUnit
    from tandem.services.kafka_admin import ensure_topics
    from tandem.streams import compat
    from tandem.streams import topics as T

    compat.apply_all()
    driver = SimDriver(SimConfig(vcpus=args.vcpus, memory_gib=args.memory_gib,
                                 fail=frozenset(x for x in args.fail.split(",") if x)))
    if args.pidfile:
        Path(args.pidfile).write_text(f"{os.getpid()}\n")

    async def main() -> None:
        await ensure_topics(args.broker, T.site_topics([args.site], args.topic_prefix))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await ComputeUnit(args.site, driver, args.broker, args.topic_prefix,
                          args.capacity_interval).run(stop)

    try:
        asyncio.run(main())
    finally:
        if args.pidfile:
            Path(args.pidfile).unlink(missing_ok=True)
    return 0
