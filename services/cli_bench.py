"""`tandem bench ...`: one sub-command per benchmark module in bench/ (tandem.bench.*).

Each benchmark module exposes `register(subparsers)`. A module that is not written (yet) is
skipped, but only when the missing module is that very module: a benchmark that fails to
import because of a broken dependency still fails loudly.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

BENCHMARKS: tuple[str, ...] = (
    "tandem.bench.te",
    "tandem.bench.joint",
    "tandem.bench.latency",
    "tandem.bench.check_all",
    "tandem.bench.sdn_flows",
    "tandem.bench.sdn_reroute",
    "tandem.bench.ingest",
    "tandem.bench.request_latency",
    "tandem.bench.fuzz",
    "tandem.bench.failover",
    "tandem.bench.provision",
    "tandem.bench.api",
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark (prints a table, writes JSON)")
    sub = parser.add_subparsers(dest="bench", metavar="BENCHMARK")
    for name in BENCHMARKS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)

    def _usage(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=_usage)
