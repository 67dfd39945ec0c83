"""`tandem infra`: the local services Tandem runs beside its code.

    tandem infra up | down | status      the local Kafka broker (+ Tandem's topics on up)
    tandem infra kafka up|down|status    the broker alone (infra/kafka/kafkactl)
    tandem infra topics [--sites a,b]    create Tandem's topics idempotently
    tandem infra wan up|down|status      the emulated WAN (when installed: tandem.services.cli_wan)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import subprocess
import sys
from pathlib import Path

from tandem.cli import UserError

REPO = Path(__file__).resolve().parent.parent
KAFKACTL = REPO / "infra" / "kafka" / "kafkactl"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("infra", help="start, stop and inspect local infrastructure",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    isub = p.add_subparsers(dest="infra_command", metavar="WHAT", required=True)
    for verb in ("up", "down", "status"):
        q = isub.add_parser(verb, help=f"{verb} the local Kafka broker"
                            + (" and create the topics" if verb == "up" else ""))
        q.set_defaults(func=_whole(verb))
    k = isub.add_parser("kafka", help="the local Kafka broker alone")
    k.add_argument("verb", choices=("fetch", "up", "down", "status"))
    k.set_defaults(func=lambda a: kafkactl(a.verb))
    t = isub.add_parser("topics", help="create Tandem's topics (idempotent)")
    t.add_argument("--broker", help="bootstrap address (default: settings/env)")
    t.add_argument("--sites", default="", help="comma-separated site ids for command topics")
    t.add_argument("--prefix", default=None, help="topic name prefix (default: env)")
    t.set_defaults(func=cmd_topics)
    try:
        wan = importlib.import_module("tandem.services.cli_wan")
    except ModuleNotFoundError as exc:
        if exc.name != "tandem.services.cli_wan":
            raise
    else:
        wan.register_wan(isub)


def kafkactl(verb: str) -> int:
    if not KAFKACTL.exists():
        raise UserError(f"{KAFKACTL} not found: run tandem from a checkout of the repository")
    return subprocess.run([sys.executable, str(KAFKACTL), verb]).returncode


def _whole(verb: str):  # type: ignore[no-untyped-def]
    def run(args: argparse.Namespace) -> int:
        rc = kafkactl(verb)
        if verb == "up" and rc == 0:
            ns = argparse.Namespace(broker=None, sites="", prefix=None)
            rc = cmd_topics(ns)
        return rc

    return run


def cmd_topics(args: argparse.Namespace) -> int:
    from tandem.services.kafka_admin import BrokerUnavailable, ensure_topics
    from tandem.streams import topics as T
    from tandem.streams.settings import Settings

    settings = Settings.from_env()
    broker = args.broker or settings.broker
    prefix = settings.topic_prefix if args.prefix is None else args.prefix
    sites = [s for s in args.sites.split(",") if s]
    try:
        specs = T.core_topics(prefix) + T.site_topics(sites, prefix)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    try:
        result = asyncio.run(ensure_topics(broker, specs))
    except BrokerUnavailable as exc:
        raise UserError(f"{exc} (start it with 'tandem infra up' or 'make kafka-up')") from None
    created = sorted(n for n, r in result.items() if r == "created")
    print(f"topics on {broker}: {len(result)} in place, {len(created)} created"
          + (f" ({', '.join(created)})" if created else ""))
    return 0
