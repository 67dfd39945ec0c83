"""Benchmark: decision → ACTIVE through the product's own path, and the time to roll back.

Nothing stands in (issue 12): per driver, fresh topics under a new prefix on the local broker,
the demo federation (6 sites) published, one real `tandem worker` (decider + executor), one
real `tandem compute --site X --driver sim|vsphere` process per site; for vsphere, one vCenter
simulator (infra/vcsim, in its own run directory, on a port picked at start) with one cluster
per site (`-cluster 6`), each unit on its own cluster and folder. Orders go to the requests
topic as the CLI sends them: one VM group of `--vms` VMs (1 vCPU, 1 GiB, 1 GiB disk) pinned by
jurisdiction to one site, sites taken in turn. No WAN demands, so the executor's plan is
create VMs (powered off) → power VMs on; the SDN steps (install paths, switch over) are
measured by `tandem bench sdn-reroute`.

Loads, after one warm-up workload (not counted): `--rollbacks` failing workloads one at a time
(pinned to ams, first, while its cluster holds no running VM); `--singles` workloads one at a
time; then `--concurrent` sent at once. The rollback fault: sim, the unit started
with `--fail <wid>-app-<last>` (the last VM's creation refused, the others deleted again);
vsphere, the workload's VMs exist already powered off (as after a crash) and their hosts are
put in maintenance mode with govc, so the power-on step fails with vSphere's InvalidState and
the created VMs are deleted. Timed from Kafka record timestamps and the moment the
benchmark read each record (bench/provision_times.py says how the time is cut).

With `--via-api` the orders go through the northbound API instead: a `tandem api` process,
each order a `PlaceAndConnect(wait_active)` call, timed in this process from the call sent to
its answer (the status that ended carrying the decision out: ACTIVE, or FAILED for the
rollbacks). That is the time to active an OSS system sees (issue 13), reported as the measure
"API call → answer (wait_active)" next to the record-timestamp measures.

    tandem bench provision [--drivers sim,vsphere] [--singles 10] [--concurrent 100] [--via-api]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tandem.bench.provision_run import Cluster, Recorder
from tandem.bench.provision_times import report

OUT = Path("bench/out/provision.json")
REPO = Path(__file__).resolve().parent.parent
SDN_NOTE = ("orders carry no WAN demands, so no path is installed: the SDN steps (install "
            "paths, switch over) are measured by `tandem bench sdn-reroute`")


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", default=os.environ.get("TANDEM_KAFKA", "127.0.0.1:9092"))
    p.add_argument("--drivers", default="sim,vsphere", help="comma-separated: sim, vsphere")
    p.add_argument("--singles", type=int, default=10, help="workloads ordered one at a time")
    p.add_argument("--concurrent", type=int, default=100, help="workloads ordered at once")
    p.add_argument("--rollbacks", type=int, default=5, help="failing workloads, one at a time")
    p.add_argument("--vms", type=int, default=2, help="VMs per workload (one group)")
    p.add_argument("--timeout", type=float, default=300.0, help="per load, seconds")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--keep-topics", action="store_true")
    p.add_argument("--via-api", action="store_true",
                   help="order through a `tandem api` process: PlaceAndConnect(wait_active)")


def register(sub: Any) -> None:
    p = sub.add_parser("provision", help="compute: order → decision → ACTIVE (1 and 100 "
                       "workloads, sim and vcsim), rollback time, where the time goes")
    add_args(p)
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tandem bench provision", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_args(p)
    return run(p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    import logging

    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("tandem.services.kafka_admin").setLevel(logging.WARNING)  # 40 topics
    drivers = [d for d in args.drivers.split(",") if d]
    bad = [d for d in drivers if d not in ("sim", "vsphere")]
    if bad:
        print(f"unknown driver(s) {bad}: sim, vsphere", file=sys.stderr)
        return 2
    # SIGTERM as Ctrl-C: the same clean-up (every process stopped by PID, topics deleted).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    load0 = round(os.getloadavg()[0], 2)
    results: dict[str, Any] = {}
    try:
        for drv in drivers:
            with tempfile.TemporaryDirectory(prefix=f"bench-provision-{drv}-") as tmp:
                results[drv] = asyncio.run(_driver(args, drv, Path(tmp)))
    except KeyboardInterrupt:  # the clean-up ran in _driver's `finally`
        print("interrupted: the worker, units and simulator it started are stopped, its "
              "topics deleted; no figures written", file=sys.stderr)
        return 130
    out = {"drivers": results, "vms_per_workload": args.vms, "via_api": args.via_api,
           "note": SDN_NOTE, "git": _git(),
           "load_average_1m_start_end": [load0, round(os.getloadavg()[0], 2)],
           "command": "tandem bench provision " + " ".join(sys.argv[3:])}
    report(out)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")
    lost = sum(r[k]["workloads"] - r[k]["done"] for r in results.values()
               for k in ("single", "concurrent", "rollback"))
    return 0 if lost == 0 else 1


def _git() -> dict[str, Any]:
    """The commit measured, and product files changed in the working tree (they were measured
    too: say so rather than credit the commit with them)."""
    import subprocess

    def git(*a: str) -> str:
        got = subprocess.run(["git", *a], capture_output=True, text=True, cwd=REPO)
        return got.stdout if got.returncode == 0 else ""
    dirty = git("status", "--porcelain", "--", "tandem", "streams", "services", "sdn", "bench")
    return {"commit": git("rev-parse", "--short", "HEAD").strip(),
            "uncommitted": [ln[3:] for ln in dirty.splitlines() if ln.strip()]}


def _order(wid: str, vms: int, cc: str) -> Any:
    from tandem.events import new_meta
    from tandem.v1 import workload_pb2 as W

    return W.RequestEvent(meta=new_meta("bench/provision"), request_id=f"{wid}-order",
                          place=W.WorkloadRequest(
        tenant="bench", workload_id=wid, priority=W.PRIORITY_CLASS_STANDARD,
        groups=[W.VmGroup(group_id="app", count=vms, vcpus=1, memory_gib=1, storage_gib=1)],
        rules=W.Rules(vm_jurisdictions=[cc])))


async def _driver(args: argparse.Namespace, drv: str, tmp: Path) -> dict[str, Any]:
    """Everything for one driver, started and stopped here (also on errors and Ctrl-C)."""
    from aiokafka import AIOKafkaProducer

    from tandem.streams import topics as T

    tag = f"{drv[:2]}{uuid.uuid4().hex[:4]}"
    rb = [f"{tag}-rb-{k:03d}" for k in range(args.rollbacks)]
    cluster = Cluster(args.broker, f"bench-provision-{tag}.", drv, tmp,
                      fail=[f"{w}-app-{args.vms - 1}" for w in rb] if drv == "sim" else [])
    producer = AIOKafkaProducer(bootstrap_servers=args.broker, acks="all", linger_ms=0)
    rec: Recorder | None = None
    api: Api | None = None
    try:
        await cluster.up()
        rec = Recorder(args.broker, cluster.prefix, cluster.sites)
        await rec.start()
        await producer.start()
        requests = T.SPECS[T.REQUESTS_BASE].name(cluster.prefix)
        ccs = cluster.jurisdictions
        if args.via_api:
            api = await Api.start(args.broker, cluster.prefix, tmp)

        async def order(wid: str, cc: str, at_once: bool) -> None:
            assert rec is not None
            rec.order_ms[wid] = time.time() * 1000
            if api is not None:
                await api.place(_order(wid, args.vms, cc).place, args.timeout)
                return
            await producer.send(requests, _order(wid, args.vms, cc).SerializeToString(),
                                key=wid.encode())
            if not at_once:
                await producer.flush()

        async def load(name: str, wids: list[str], pinned: str = "", setup: Any = None,
                       at_once: bool = False) -> dict[str, Any]:
            assert rec is not None
            started = time.time()
            calls = []
            for i, wid in enumerate(wids):
                if setup is not None:
                    await setup(wid)
                try:
                    call = order(wid, pinned or ccs[i % len(ccs)], at_once)
                    if at_once:
                        calls.append(asyncio.create_task(call))
                        continue
                    await call
                    await rec.wait_done([wid], f"{drv} {name}", args.timeout,
                                        cluster.check_alive)
                finally:
                    if setup is not None:
                        await cluster.maintenance_exit()
            if at_once:
                await asyncio.gather(*calls)
                await producer.flush()
                await rec.wait_done(wids, f"{drv} {name}", args.timeout, cluster.check_alive)
            out: dict[str, Any] = rec.summary(wids, rollback=name == "rollback")
            out["wall_s"] = round(time.time() - started, 2)
            if api is not None:
                out["ms"]["API call → answer (wait_active)"] = api.stats(wids)
            return out

        await load("warm-up", [f"{tag}-warm"])
        res = {"rollback": await load(
            "rollback", rb, pinned="NL",
            setup=cluster.fail_power_on(args.vms) if drv == "vsphere" else None)}
        res["rollback"]["fault"] = (
            f"creation of VM <wid>-app-{args.vms - 1} refused (unit started with --fail)"
            if drv == "sim" else "power-on refused: the workload's VMs exist powered off (as "
            "after a crash) on hosts put in maintenance mode (govc host.maintenance.enter)")
        res["single"] = await load("single", [f"{tag}-s-{i:03d}" for i in range(args.singles)])
        res["concurrent"] = await load(
            "concurrent", [f"{tag}-c-{i:03d}" for i in range(args.concurrent)], at_once=True)
        res["sites"] = cluster.sites
        res["unit_exits"] = cluster.exits()
        return res
    finally:
        if api is not None:
            await api.stop()
        await producer.stop()
        if rec is not None:
            await rec.stop()
        await cluster.down(keep_topics=args.keep_topics)


class Api:
    """A `tandem api` process (started, and stopped by its handle, here) and a client on it;
    each order a PlaceAndConnect(wait_active) call, timed from sent to answered."""

    def __init__(self, proc: Any, channel: Any, stub: Any) -> None:
        self.proc, self.channel, self.stub = proc, channel, stub
        self.ms: dict[str, float] = {}

    @classmethod
    async def start(cls, broker: str, prefix: str, tmp: Path) -> Api:
        import grpc

        from tandem.bench.api import start_api
        from tandem.services.api.client import until_serving
        from tandem.services.api.stubs import TandemStub

        proc, port = start_api(broker, prefix, tmp)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        await until_serving(channel)
        return cls(proc, channel, TandemStub(channel))

    async def place(self, workload: Any, timeout: float) -> None:
        from tandem.v1 import api_pb2

        t0 = time.perf_counter()
        await self.stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
            workload=workload, idempotency_key=workload.workload_id, wait_active=True),
            timeout=timeout)
        self.ms[workload.workload_id] = (time.perf_counter() - t0) * 1000

    def stats(self, wids: list[str]) -> dict[str, float]:
        from tandem.bench.provision_times import stats

        return stats([self.ms[w] for w in wids if w in self.ms])

    async def stop(self) -> None:
        await self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except Exception:
            self.proc.kill()
            self.proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())

