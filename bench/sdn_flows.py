"""Benchmark: flow entries programmed per second by one SDN control unit (target ≥ 8,000/s).

What is measured, end to end on a real Open vSwitch (userspace datapath) bridge of its own,
`tdm-bench`, connected to an os-ken instance in this process:
  build (fold the InstallPath intents into the site state → make-before-break plan → os-ken
  messages, datapath=None) + send (attach the datapath, serialise, write to the OpenFlow
  connection) + confirm (barrier reply after every batch).
The flow count on the switch is then read back (flow stats) and must equal what we sent.

Two ways of batching are reported:
- `batch`: a batch of commands confirmed with one barrier per plan phase (what the unit's
  worker does with the commands queued behind each other, up to 512; and reconciliation);
- `per-command`: every command is its own plan with its own barrier(s).
"Per core": the rate over the process CPU time (all threads of the unit: builder, os-ken send
and receive threads) as well as over wall-clock time; OVS itself runs on the other core.

    tandem bench sdn-flows [--flows 20000] [--batch 1000] [--meters]
    python -m tandem.bench.sdn_flows ...
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import Any

OUT = Path("bench/out/sdn_flows.json")
BRIDGE = "tdm-bench"
OF_PORT = 16690
DPID = 0xBE4C


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--flows", type=int, default=20000, help="flow entries to program per mode")
    p.add_argument("--batch", type=int, default=1000, help="commands per barrier in batch mode")
    p.add_argument("--meters", action="store_true",
                   help="one meter per reservation as well (as on an ingress switch)")
    p.add_argument("--per-command", type=int, default=2000,
                   help="flow entries for the per-command mode (0 = skip it)")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("sdn-flows", help="SDN unit: flow entries/s programmed on OVS")
    _add_args(p)
    p.set_defaults(func=handler)


def _run(*argv: str) -> str:
    res = subprocess.run(list(argv), capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {res.stderr.strip()}")
    return res.stdout


def bridge_up() -> None:
    from tandem.services.cli_wan import ensure_ovs

    ensure_ovs()
    _run("ovs-vsctl", "--if-exists", "del-br", BRIDGE)
    _run("ovs-vsctl", "add-br", BRIDGE, "--", "set", "bridge", BRIDGE, "datapath_type=netdev",
         "protocols=OpenFlow13", "fail_mode=secure", f"other-config:datapath-id={DPID:016x}",
         "other-config:disable-in-band=true", "--", "set-controller", BRIDGE,
         f"tcp:127.0.0.1:{OF_PORT}", "--", "set", "controller", BRIDGE, "max_backoff=1000")


def bridge_down() -> None:
    _run("ovs-vsctl", "--if-exists", "del-br", BRIDGE)


def _intents(n: int, offset: int, meters: bool) -> list[Any]:
    from tandem.sdn.intents import Hop, PathIntent, TrafficMatch

    out = []
    for i in range(offset, offset + n):
        dst = f"10.{100 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"
        out.append(PathIntent(f"bench-{i}", 1, TrafficMatch(ipv4_dst=dst),
                              (Hop(DPID, 1 + i % 3, 5),), 1000 if meters else 0, ingress=True))
    return out


def measure(unit: Any, intents: list[Any], batch: int) -> dict[str, float]:
    """Program the intents; returns flows, wall and CPU seconds."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    flows = 0
    for i in range(0, len(intents), batch):
        plans = [unit.intent.install(p) for p in intents[i:i + batch]]
        flows += sum(p.count("flow_add") for p in plans)
        for res in unit.execute_many(plans):  # what the unit's worker does with a batch
            if res.error:
                raise RuntimeError(f"switch refused: {res.error}")
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"flows": flows, "wall_s": wall, "cpu_s": cpu, "flows_per_s": flows / wall,
            "flows_per_cpu_s": flows / cpu if cpu > 0 else 0.0}


def run(flows: int, batch: int, meters: bool, per_command: int) -> dict[str, Any]:
    from tandem.sdn.app import TandemSdnApp
    from tandem.sdn.process import start_osken
    from tandem.sdn.unit import ControlUnit, UnitConfig

    bridge_up()
    try:
        unit = ControlUnit(UnitConfig("bench"), publish=lambda *a: None, on_acked=lambda _: None)
        TandemSdnApp.unit = unit
        start_osken(OF_PORT)
        deadline = time.monotonic() + 20
        while DPID not in unit.channels:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{BRIDGE} did not connect to the benchmark's os-ken")
            time.sleep(0.05)
        ch = unit.channels[DPID]
        results: dict[str, Any] = {}
        # warm-up (imports, first serialisations), not counted
        measure(unit, _intents(200, 10_000_000, meters), 200)
        results["batch"] = measure(unit, _intents(flows, 0, meters), batch)
        results["batch"]["batch"] = batch
        if per_command:
            results["per-command"] = measure(unit, _intents(per_command, 5_000_000, meters), 1)
            results["per-command"]["batch"] = 1
        on_switch = sum(1 for s in ch.flow_stats() if s.priority < 65000)
        expected = flows + per_command + 200
        if on_switch != expected:
            raise RuntimeError(f"switch holds {on_switch} entries, expected {expected}")
        results["verified_on_switch"] = on_switch
        return results
    finally:
        bridge_down()


def _print(res: dict[str, Any], meters: bool) -> None:
    print(f"SDN control unit: flow entries programmed on Open vSwitch "
          f"({'with' if meters else 'without'} one meter per reservation)")
    print(f"{'mode':<12} {'batch':>6} {'flows':>7} {'wall s':>8} {'cpu s':>8} {'flows/s':>9} "
          f"{'flows/cpu-s':>12}")
    for mode in ("batch", "per-command"):
        r = res.get(mode)
        if r:
            print(f"{mode:<12} {r['batch']:>6} {r['flows']:>7} {r['wall_s']:>8.3f} "
                  f"{r['cpu_s']:>8.3f} {r['flows_per_s']:>9.0f} {r['flows_per_cpu_s']:>12.0f}")
    print(f"entries read back from the switch: {res['verified_on_switch']}; target ≥ 8,000/s")


def handler(args: argparse.Namespace) -> int:
    import os

    from tandem.cli import UserError

    if os.geteuid() != 0:
        raise UserError("the SDN benchmarks need root (Open vSwitch)")
    res = run(args.flows, args.batch, args.meters, args.per_command)
    res["params"] = {"flows": args.flows, "batch": args.batch, "meters": args.meters}
    _print(res, args.meters)
    out = OUT.with_name("sdn_flows_meters.json") if args.meters else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(f"wrote {out}")
    # os-ken's threads cannot be stopped; leave without waiting for them
    import logging
    import sys

    sys.stdout.flush()
    logging.shutdown()
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tandem.bench.sdn_flows", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_args(p)
    return handler(p.parse_args(argv))


if __name__ == "__main__":
    import sys

    sys.exit(main())
