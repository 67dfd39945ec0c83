"""Benchmark: a real link goes down → every affected reservation rerouted, on the product's path.

Everything is the product, really started: the emulated WAN of `--topology` (default
infra/wan/ring5.json: 5 sites in a ring, Open vSwitch userspace datapath), one `tandem sdn`
control unit per site, one `tandem compute --driver sim` unit per site (the only stand-in:
the hypervisor), one `tandem worker` (decider and executor), the local Kafka broker, topics
under a fresh prefix. Orders for `--reservations` workloads (one VM at ams, traffic to waw)
go through the requests topic; each becomes ACTIVE through the executor.

One run: `ip link set <veth> down` on the link the workloads' paths take out of ams; the
units see the port go down and publish a link-state event; the decider reacts (one REROUTED
decision per workload, with its make-before-break steps); the executor sends each step when
every ack of the previous one is in; the units program flows and meters and acknowledge after
a barrier. Nothing in the benchmark decides, orders steps or waits for acks on the product's
behalf: it only cuts the link and then reads the topics. The link is brought back before the
next run, which cuts the link the workloads now take (ams--ber and ams--par alternate).

Reported per reservation, from the moment the port was set down:
- `new path confirmed`: every install of the new path acknowledged, the ingress switch-over
  included (barrier-confirmed on each switch) — the figure the target (p99 ≤ 100 ms) is for;
- `old entries removed`: the old path's removals acknowledged as well.
And where the time goes (medians over runs): port down → link-state event on Kafka, → the
decider's reroute decisions on Kafka, → first step's commands, → last switch-over ack.

    tandem bench sdn-reroute [--reservations 100] [--runs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tandem.services.compute.procs import start_unit, stop_units

from tandem.bench.stats import percentile

OUT = Path("bench/out/sdn_reroute.json")
REPO = Path(__file__).resolve().parent.parent
DEFAULT_TOPO = REPO / "infra" / "wan" / "ring5.json"
SRC, DST = "ams", "waw"
NEW_PATH_STEPS = ("install new paths (transit and egress)", "switch over at the ingress")
OLD_PATH_STEPS = ("remove old paths",)


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--topology", default=str(DEFAULT_TOPO))
    p.add_argument("--reservations", type=int, default=100)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--broker", default=None)
    p.add_argument("--bandwidth-mbps", type=float, default=0.1,
                   help="each reservation's rate (small enough that the engine keeps them all "
                   "on the shortest path)")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("sdn-reroute",
                              help="SDN: link down → reservations rerouted, product path (ms)")
    _add_args(p)
    p.set_defaults(func=handler)


class Statuses:
    """Follows the workload-status topic: the latest (revision, phase) of every workload."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.latest: dict[str, tuple[int, int, str]] = {}
        self.changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer

        self._consumer = AIOKafkaConsumer(self.topic, bootstrap_servers=self.bootstrap,
                                          isolation_level="read_committed", group_id=None,
                                          auto_offset_reset="earliest", fetch_max_wait_ms=20)
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        from tandem.v1 import decision_pb2 as D

        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                for r in recs:
                    s = D.WorkloadStatus.FromString(r.value)
                    # one partition per workload: later records are later statuses
                    if s.revision >= self.latest.get(s.workload_id, (-1, 0, ""))[0]:
                        self.latest[s.workload_id] = (s.revision, s.phase, s.reason)
            if batch:
                self.changed.set()

    async def wait(self, wids: list[str], pred: Any, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(pred(w, self.latest.get(w)) for w in wids):
            left = deadline - time.monotonic()
            if left <= 0:
                bad = [(w, self.latest.get(w)) for w in wids if not pred(w, self.latest.get(w))]
                raise RuntimeError(f"{what}: {len(bad)} of {len(wids)} not there after "
                                   f"{timeout:.0f} s, e.g. {bad[:3]}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))
            except asyncio.TimeoutError:
                pass

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._consumer.stop()


def _order(i: int, bw: float) -> Any:
    from tandem.events import new_meta
    from tandem.v1 import workload_pb2 as W

    wid = f"rr-{i:03d}"
    return wid, W.RequestEvent(meta=new_meta("bench/sdn-reroute"), request_id=f"{wid}-order",
                               place=W.WorkloadRequest(
        tenant="bench", workload_id=wid, priority=W.PRIORITY_CLASS_STANDARD,
        groups=[W.VmGroup(group_id="app", count=1, vcpus=1, memory_gib=1)],
        demands=[W.TrafficDemand(demand_id="feed", from_group="app", to_site=DST,
                                 bandwidth_mbps=bw, max_latency_ms=40)],
        rules=W.Rules(vm_jurisdictions=["NL"])))


def _ms(rec_ts_ms: int, t0: float) -> float:
    return rec_ts_ms - t0 * 1000


async def _measure(bootstrap: str, prefix: str, wids: set[str], revision: dict[str, int],
                   link: str, t_down: float) -> dict[str, Any]:
    """Read what the run left on the topics and time it against `t_down` (wall clock)."""
    from tandem.streams import topics as T
    from tandem.streams.readback import read_all_partitions
    from tandem.v1 import commands_pb2, decision_pb2 as D, link_state_pb2 as L

    name = lambda base: T.SPECS[base].name(prefix)  # noqa: E731
    since = int(t_down * 1000) - 1
    events = [r for r in await read_all_partitions(bootstrap, name(T.LINK_STATE_BASE))
              if r.timestamp >= since]
    downs = [r.timestamp for r in events if (e := L.LinkStateEvent.FromString(r.value)).link_id
             == link and e.state == L.OPER_STATE_DOWN]
    decisions: dict[str, Any] = {}
    decided: dict[str, int] = {}
    dec_ts = []
    for r in await read_all_partitions(bootstrap, name(T.DECISIONS_BASE)):
        d = D.Decision.FromString(r.value)
        if d.workload_id in wids and d.revision == revision[d.workload_id] + 1:
            decisions[d.workload_id] = d
            decided[d.workload_id] = r.timestamp
            dec_ts.append(r.timestamp)
    missing = wids - decisions.keys()
    if missing:
        raise RuntimeError(f"no reroute decision for {len(missing)} workloads, e.g. "
                           f"{sorted(missing)[:3]}")
    kinds = {D.DecisionKind.Name(d.kind) for d in decisions.values()}
    acks: dict[str, Any] = {}
    for r in await read_all_partitions(bootstrap, name(T.SDN_ACKS_BASE)):
        if r.timestamp >= since:
            a = commands_pb2.SdnAck.FromString(r.value)
            acks[a.command_id] = (a, r.timestamp)
    sent: dict[str, int] = {}  # command id -> record time on its site's command topic
    for site in {c.site_id for d in decisions.values() for st in d.steps for c in st.sdn}:
        for r in await read_all_partitions(bootstrap, T.sdn_commands_topic(site, prefix)):
            if r.timestamp >= since:
                sent[commands_pb2.SdnCommand.FromString(r.value).command_id] = r.timestamp
    new_ms, old_ms, failed = [], [], []
    # per step k: executor hop (previous step's last ack, or the decision, → this step's
    # commands on the topics) and units' hop (→ this step's last ack)
    hops: dict[str, list[float]] = {}
    for wid, d in decisions.items():
        ids_new = [c.command_id for s in d.steps if s.what in NEW_PATH_STEPS for c in s.sdn]
        ids_old = [c.command_id for s in d.steps if s.what in OLD_PATH_STEPS for c in s.sdn]
        for cid in ids_new + ids_old:
            if cid not in acks or cid not in sent:
                raise RuntimeError(f"{wid}: {cid} never {'sent' if cid not in sent else 'acked'}")
            a = acks[cid][0]
            if a.status not in (commands_pb2.ACK_STATUS_OK, commands_pb2.ACK_STATUS_NOOP):
                failed.append(f"{cid}: {a.error}")
        new_ms.append(max(_ms(acks[c][1], t_down) for c in ids_new))
        old_ms.append(max(_ms(acks[c][1], t_down) for c in ids_old))
        prev = decided[wid]
        for k, st in enumerate(d.steps):
            ids = [c.command_id for c in st.sdn]
            if not ids:
                continue
            out = min(sent[c] for c in ids)
            back = max(acks[c][1] for c in ids)
            hops.setdefault(f"step {k + 1} executor", []).append(out - prev)
            hops.setdefault(f"step {k + 1} units", []).append(back - out)
            prev = back
    first_cmd = _ms(min(sent.values()), t_down) if sent else float("nan")
    return {"kinds": sorted(kinds), "failed_acks": failed,
            "new_path_ms": new_ms, "old_removed_ms": old_ms,
            "detect_ms": _ms(min(downs), t_down) if downs else float("nan"),
            "decided_ms": _ms(max(dec_ts), t_down), "first_command_ms": first_cmd,
            "hops_p50_ms": {k: percentile(v, 0.5) for k, v in hops.items()}}


async def _main(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    from tandem.bench.workers import Workers
    from tandem.engine.loaders import load_topology
    from tandem.sdn.procs import Units
    from tandem.sdn.publish import _publish
    from tandem.services import cli_wan
    from tandem.services.kafka_admin import delete_topics_with_prefix, ensure_topics
    from tandem.streams import topics as T
    from tandem.streams.settings import Settings
    from tandem.v1 import decision_pb2 as D

    bootstrap = args.broker or Settings.from_env().broker
    topo = load_topology(args.topology)
    if cli_wan.STATE_FILE.exists():
        from tandem.cli import UserError

        raise UserError("an emulated WAN is already up; the benchmark builds its own: run "
                        "`tandem infra wan down` first")
    prefix = f"bench-reroute-{uuid.uuid4().hex[:8]}."
    n = args.reservations
    state = await asyncio.to_thread(cli_wan.wan_up, topo, 1.0)
    units: Units | None = None
    computes: list[subprocess.Popen[bytes]] = []
    workers = Workers(1, bootstrap, prefix, tmp, app_id=f"{prefix}bench", restart=False)
    statuses = Statuses(bootstrap, T.SPECS[T.WORKLOAD_STATUS_BASE].name(prefix))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    runs: list[dict[str, Any]] = []
    try:
        wan = state["layout"]
        await ensure_topics(bootstrap, T.core_topics(prefix)
                            + T.site_topics(list(wan["sites"]), prefix))
        units = Units(wan, bootstrap, prefix, tmp / "sdn", reconcile_interval=30.0,
                      stats_interval=5.0, lldp_interval=2.0)  # the units' production defaults
        for s in wan["sites"]:
            units.start(s)
            computes.append(start_unit(s, bootstrap, prefix, tmp))
        await asyncio.to_thread(units.wait_connected)
        await _publish(bootstrap, topo, wan, prefix)
        workers.start_all()
        await statuses.start()
        await producer.start()
        orders = [_order(i, args.bandwidth_mbps) for i in range(n)]
        wids = [w for w, _ in orders]
        for wid, ev in orders:
            await producer.send(T.SPECS[T.REQUESTS_BASE].name(prefix), ev.SerializeToString(),
                                key=wid.encode())
        await producer.flush()
        print(f"placing {n} workloads {SRC}→{DST} ...", flush=True)
        await statuses.wait(wids, lambda _w, s: s is not None
                            and s[1] == D.WORKLOAD_PHASE_ACTIVE, "placed and active", 300)
        for run in range(args.runs):
            revision = {w: statuses.latest[w][0] for w in wids}
            link, hit = await _current_link(bootstrap, prefix, wids, revision)
            veth = wan["links"][link]["veth_a"]
            t_down = time.time()
            subprocess.run(["ip", "link", "set", veth, "down"], check=True)
            try:
                await statuses.wait(
                    hit, lambda w, s: s is not None and s[1] == D.WORKLOAD_PHASE_ACTIVE
                    and s[0] > revision[w], "rerouted and active", 120)
            finally:
                subprocess.run(["ip", "link", "set", veth, "up"], check=True)
            res = await _measure(bootstrap, prefix, set(hit), revision, link, t_down)
            res["link"], res["affected"] = link, len(hit)
            runs.append(res)
            print(f"run {run + 1}/{args.runs}: {link} down, {len(hit)} reservations on it: "
                  f"new paths p50 "
                  f"{percentile(res['new_path_ms'], 0.5):.0f} ms, p99 "
                  f"{percentile(res['new_path_ms'], 0.99):.0f} ms; old removed p99 "
                  f"{percentile(res['old_removed_ms'], 0.99):.0f} ms", flush=True)
            await _link_up_folded(bootstrap, prefix, link, t_down)
    finally:
        await producer.stop()
        await statuses.stop()
        workers.stop_all()
        stop_units(computes)
        if units is not None:
            for s in list(units.procs):
                units.stop(s)
        await asyncio.to_thread(cli_wan.wan_down)
        await delete_topics_with_prefix(bootstrap, prefix)
    new = [x for r in runs for x in r["new_path_ms"]]
    old = [x for r in runs for x in r["old_removed_ms"]]
    med = lambda k: percentile([r[k] for r in runs], 0.5)  # noqa: E731
    return {
        "reservations": n, "runs": len(runs), "topology": args.topology,
        "affected_per_run": [r["affected"] for r in runs],
        "new_path_p50_ms": percentile(new, 0.5), "new_path_p99_ms": percentile(new, 0.99),
        "new_path_max_ms": max(new), "old_removed_p50_ms": percentile(old, 0.5),
        "old_removed_p99_ms": percentile(old, 0.99), "old_removed_max_ms": max(old),
        "detect_ms_median": med("detect_ms"), "decided_ms_median": med("decided_ms"),
        "first_command_ms_median": med("first_command_ms"),
        "failed_acks": sum(len(r["failed_acks"]) for r in runs),
        "decision_kinds": sorted({k for r in runs for k in r["kinds"]}),
        "per_run": [{"link": r["link"], "new_path_p50_ms": percentile(r["new_path_ms"], 0.5),
                     "new_path_p99_ms": percentile(r["new_path_ms"], 0.99),
                     "old_removed_p99_ms": percentile(r["old_removed_ms"], 0.99),
                     "detect_ms": r["detect_ms"], "decided_ms": r["decided_ms"],
                     "first_command_ms": r["first_command_ms"]} for r in runs],
        "hops_p50_ms": {k: percentile([r["hops_p50_ms"][k] for r in runs], 0.5)
                        for k in runs[0]["hops_p50_ms"]},
        "load_average": os.getloadavg()[0],
    }


async def _current_link(bootstrap: str, prefix: str, wids: list[str],
                        revision: dict[str, int]) -> tuple[str, list[str]]:
    """The link out of SRC that most workloads' current paths take, and those workloads (the
    engine may spread them; the figures are over the ones the cut affects, and say how many)."""
    from tandem.streams import topics as T
    from tandem.streams.readback import read_all_partitions
    from tandem.v1 import decision_pb2 as D

    first: dict[str, str] = {}
    for r in await read_all_partitions(bootstrap, T.SPECS[T.DECISIONS_BASE].name(prefix)):
        d = D.Decision.FromString(r.value)
        if d.workload_id in revision and d.revision == revision[d.workload_id] and d.paths:
            first[d.workload_id] = d.paths[0].link_ids[0]
    if len(first) != len(wids):
        raise RuntimeError(f"{len(wids) - len(first)} workloads have no current path")
    counts: dict[str, int] = {}
    for lid in first.values():
        counts[lid] = counts.get(lid, 0) + 1
    link = max(sorted(counts), key=lambda l: counts[l])
    return link, sorted(w for w, l in first.items() if l == link)


async def _link_up_folded(bootstrap: str, prefix: str, link: str, since: float,
                          timeout: float = 60.0) -> None:
    """Wait until the decider has folded the link's UP event (it is on the decider log)."""
    from tandem.streams import topics as T
    from tandem.streams.readback import read_all_partitions
    from tandem.v1 import decider_pb2, link_state_pb2 as L

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for r in await read_all_partitions(bootstrap, T.SPECS[T.DECIDER_BASE].name(prefix)):
            if r.timestamp < since * 1000:
                continue
            inp = decider_pb2.DeciderInput.FromString(r.value)
            if inp.WhichOneof("input") == "link_state" and inp.link_state.link_id == link \
                    and inp.link_state.state == L.OPER_STATE_UP:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the decider did not see {link} come back up within {timeout:.0f} s")


def handler(args: argparse.Namespace) -> int:
    import tempfile

    from tandem.cli import UserError

    if os.geteuid() != 0:
        raise UserError("the SDN benchmarks need root (Open vSwitch, network namespaces)")
    import logging

    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # a consumer per topic read
    with tempfile.TemporaryDirectory(prefix="bench-reroute-") as tmp:
        res = asyncio.run(_main(args, Path(tmp)))
    print(f"\nSDN reroute on the product's path: {res['reservations']} reservations {SRC}→{DST}, "
          f"{res['runs']} runs, reservations on the cut link per run: "
          f"{', '.join(map(str, res['affected_per_run']))}, from the port set down "
          f"(kinds: {', '.join(res['decision_kinds'])})")
    print(f"{'measure':<38} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    print(f"{'every new path confirmed (switch-over)':<38} {res['new_path_p50_ms']:>8.1f} "
          f"{res['new_path_p99_ms']:>8.1f} {res['new_path_max_ms']:>8.1f}")
    print(f"{'every old entry removed':<38} {res['old_removed_p50_ms']:>8.1f} "
          f"{res['old_removed_p99_ms']:>8.1f} {res['old_removed_max_ms']:>8.1f}")
    print(f"medians over runs: port down → link-state event {res['detect_ms_median']:.0f} ms, "
          f"→ last reroute decision {res['decided_ms_median']:.0f} ms, → first step's "
          f"command {res['first_command_ms_median']:.0f} ms")
    print("where the time goes, per step (median ms): " + "; ".join(
        f"{k} {v:.0f}" for k, v in res["hops_p50_ms"].items()))
    print(f"failed acks: {res['failed_acks']}; load average {res['load_average']:.2f} "
          "(2 cores, shared)")
    met = res["new_path_p99_ms"] <= 100.0
    print(f"target: new paths confirmed p99 ≤ 100 ms: {'met' if met else 'NOT met'}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(res, indent=1))
    print(f"wrote {OUT}")
    return 0 if res["failed_acks"] == 0 else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tandem.bench.sdn_reroute", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_args(p)
    return handler(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
