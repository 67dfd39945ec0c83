"""Drive reservations by hand on the emulated WAN (docs/SDN.md), standing in for the stream
processor: fewest-hops paths (the engine's path search), egress before ingress, acks printed.

    python -m tandem.sdn.handdrive install --id r1 --src ams --dst waw --rate-kbps 8000
    python -m tandem.sdn.handdrive install --id r2 --src ams --dst waw --avoid ams--ber
    python -m tandem.sdn.handdrive remove --id r1
    python -m tandem.sdn.handdrive list

With `--workload W --src-block CIDR --dst-block CIDR`, `install` speaks the core's terms
instead: per site the links the traffic arrives and leaves by (`SiteCrossing`, no ports; each
unit resolves them), matched on the workload's address blocks, acknowledged keyed by W.
To move traffic by hand, do what the core does (`tandem.steps`, the one make-before-break
order): install a new reservation on the new path, then remove the old one.

What was installed is remembered in .local/sdn/hand.json (reservation → path) for `list`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BOOK = REPO / ".local" / "sdn" / "hand.json"


def _book() -> dict[str, Any]:
    return dict(json.loads(BOOK.read_text())) if BOOK.exists() else {}


def _save(book: dict[str, Any]) -> None:
    BOOK.parent.mkdir(parents=True, exist_ok=True)
    BOOK.write_text(json.dumps(book, indent=1, sort_keys=True))


def _print_acks(acks: dict[str, Any], keys: dict[str, str] | None = None) -> bool:
    from tandem.v1 import commands_pb2 as c

    ok = True
    for cid in sorted(acks):
        a = acks[cid]
        status = c.AckStatus.Name(a.status).removeprefix("ACK_STATUS_")
        ok &= a.status in (c.ACK_STATUS_OK, c.ACK_STATUS_NOOP)
        key = f" key {keys[cid]}" if keys and cid in keys else ""
        print(f"  ack {cid:<32} {status:<6} +{a.flows_added}/-{a.flows_removed} flows, "
              f"{a.meters_changed} meters, confirmed {a.confirmed_ms:.1f} ms{key} {a.error}")
    return ok


async def _run(args: argparse.Namespace) -> int:
    from tandem.sdn.driver import SdnDriver
    from tandem.sdn.paths import (crossing_commands, install_commands, remove_command,
                                  shortest_link_path)
    from tandem.services.cli_wan import load_layout, load_state
    from tandem.streams.settings import Settings

    settings = Settings.from_env()
    layout = load_layout()
    hosts = {s: v["host_ip"] for s, v in load_state()["layout"]["sites"].items()}
    book = _book()
    if args.cmd == "list":
        for rid, r in sorted(book.items()):
            print(f"{rid}: g{r['gen']} {r['src']}→{r['dst']} over {','.join(r['path'])} "
                  f"{r['rate']} kbps")
        return 0
    driver = SdnDriver(args.broker or settings.broker,
                       settings.topic_prefix if args.prefix is None else args.prefix)
    await driver.start()
    try:
        if args.cmd == "install":
            path = shortest_link_path(layout, args.src, args.dst, args.avoid)
            if not path:
                print(f"no path from {args.src} to {args.dst}", file=sys.stderr)
                return 1
            if args.workload:
                sites = [args.src]
                for lid in path:
                    sites.append(layout.links[lid].other(sites[-1]))
                cmds = crossing_commands(reservation_id=args.id, generation=1, sites=sites,
                                         links=path, workload_id=args.workload,
                                         ipv4_src=args.src_block, ipv4_dst=args.dst_block,
                                         rate_kbps=args.rate_kbps)
            else:
                cmds = install_commands(layout, reservation_id=args.id, generation=1,
                                        src=args.src, link_path=path, ipv4_src=hosts[args.src],
                                        ipv4_dst=hosts[args.dst], rate_kbps=args.rate_kbps)
            print(f"{args.id}: {args.src}→{args.dst} over {' '.join(path)}"
                  + (f" (workload {args.workload}, by crossings)" if args.workload else ""))
            acks = await driver.run_steps([[c for s, c in reversed(list(cmds.items()))
                                            if s != args.src], [cmds[args.src]]])
            book[args.id] = {"gen": 1, "src": args.src, "dst": args.dst, "path": path,
                             "rate": args.rate_kbps, "workload": args.workload}
        else:  # remove
            acks = await driver.run_steps([[remove_command(s, args.id) for s in layout.dpids]])
            book.pop(args.id, None)
        ok = _print_acks(acks, driver.ack_keys)
        _save(book)
        return 0 if ok else 1
    finally:
        await driver.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tandem.sdn.handdrive", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--broker", default=None)
    p.add_argument("--prefix", default=None)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("install")
    a.add_argument("--id", required=True)
    a.add_argument("--src", required=True)
    a.add_argument("--dst", required=True)
    a.add_argument("--rate-kbps", type=int, default=8000)
    a.add_argument("--avoid", action="append", default=[])
    a.add_argument("--workload", default="",
                   help="send by crossings (links only) for this workload, as the core does")
    a.add_argument("--src-block", default="", help="with --workload: source address block")
    a.add_argument("--dst-block", default="", help="with --workload: target address block")
    r = sub.add_parser("remove")
    r.add_argument("--id", required=True)
    sub.add_parser("list")
    args = p.parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except KeyError as exc:
        print(f"unknown reservation or site {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
