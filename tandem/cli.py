"""`tandem` console script: a thin dispatcher over sub-command modules.

Each entry of SUBCOMMANDS names a module with `register(subparsers)` that adds one
sub-command (and its own sub-commands) and sets `func` on the parsed namespace. Modules import
their heavy dependencies (Faust, os-ken, scipy) inside the handler, so `tandem --help` stays
fast and a broken optional part cannot break the others.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# (module, description); every module lives in services/ (the CLI is an adapter).
SUBCOMMANDS: tuple[str, ...] = (
    "tandem.services.cli_infra",  # tandem infra {kafka,topics,wan} ...
    "tandem.services.cli_worker",  # tandem worker / demo-topology / replay
    "tandem.services.cli_plan",  # tandem plan
    "tandem.services.cli_check",  # tandem check (independent feasibility check of a plan)
    "tandem.services.cli_gen",  # tandem gen-topology (seeded synthetic WANs)
    "tandem.services.cli_bench",  # tandem bench {te,joint,latency,...}
    "tandem.services.cli_sdn",  # tandem sdn --site X
    "tandem.services.cli_export",  # tandem export (telemetry from files and counters)
    "tandem.services.cli_compute",  # tandem compute --site X (compute control unit)
    "tandem.services.cli_api",  # tandem api --listen HOST:PORT (northbound gRPC server)
    "tandem.services.cli_orders",  # tandem place|whatif|release|approve|workloads|topology|watch (API)
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tandem", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not written yet: the command simply is not offered
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except UserError as exc:  # a clear message, never a traceback, for the user's mistakes
        print(f"tandem: error: {exc}", file=sys.stderr)
        return 2


class UserError(Exception):
    """A problem the user can fix (bad file, service not running): printed without traceback."""


if __name__ == "__main__":
    sys.exit(main())
