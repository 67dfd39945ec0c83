"""The processes and the topic reader of `tandem bench provision` (bench/provision.py).

`Cluster` starts what the product runs — one `tandem worker`, one `tandem compute` unit per
site of the demo federation, and for vsphere a vCenter simulator of its own (infra/vcsim,
`-cluster <sites>`, its run directory under the benchmark's temporary directory) — and stops
each by the PID it started, also when the benchmark fails or is interrupted. `Recorder` reads
the decisions, workload statuses, compute commands and acks as they are committed, with their
record timestamps and the moment it saw them, so that the timelines of
bench/provision_times.py can be cut from them.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tandem.bench import provision_times as PT
from tandem.bench.workers import Workers

REPO = Path(__file__).resolve().parent.parent
VCSIMCTL = REPO / "infra" / "vcsim" / "vcsimctl"
GOVC = Path(os.environ.get("TANDEM_STATE_DIR", str(REPO / ".local"))) / "vcsim" / "bin" / "govc"
ROLLBACK_SITE = "ams"  # the rollback workloads are pinned to NL


class Cluster:
    """One driver's federation: broker topics under `prefix`, the worker, the units, vcsim."""

    def __init__(self, broker: str, prefix: str, driver: str, tmp: Path,
                 fail: list[str]) -> None:
        from tandem.services.demo_data import demo_federation

        fed = [ev.site for ev in demo_federation() if ev.HasField("site")]
        self.sites = [s.site_id for s in fed]
        self.jurisdictions = [s.jurisdiction for s in fed]
        self.broker, self.prefix, self.driver, self.tmp, self.fail = broker, prefix, driver, \
            tmp, fail
        self.units: dict[str, subprocess.Popen[bytes]] = {}
        self.workers = Workers(1, broker, prefix, tmp, app_id=f"{prefix}worker", restart=False,
                               loglevel="warning")
        self.vcsim_dir = tmp / "vcsim"
        self.vcsim_started = False
        self.in_maintenance: list[str] = []

    # ------------------------------------------------------------------------- start
    async def up(self) -> None:
        from aiokafka import AIOKafkaProducer

        from tandem.inventory import inventory_key
        from tandem.services.demo_data import demo_federation
        from tandem.services.kafka_admin import ensure_topics
        from tandem.streams import topics as T
        from tandem.streams.readback import wait_committed

        await ensure_topics(self.broker, T.core_topics(self.prefix)
                            + T.site_topics(self.sites, self.prefix))
        if self.driver == "vsphere":
            await asyncio.to_thread(self._vcsim, "up")
        for i, site in enumerate(self.sites):
            self._unit(i, site)
        self.workers.start_all()
        producer = AIOKafkaProducer(bootstrap_servers=self.broker, acks="all")
        await producer.start()
        try:
            for ev in demo_federation():
                await producer.send(T.SPECS[T.INVENTORY_BASE].name(self.prefix),
                                    ev.SerializeToString(), key=inventory_key(ev).encode())
            await producer.flush()
        finally:
            await producer.stop()
        # Orders travel another topic: the decider must hold the whole inventory first.
        await wait_committed(self.broker, f"{self.prefix}worker.decider-inputs",
                             [T.SPECS[b].name(self.prefix) for b in (
                                 T.INVENTORY_BASE, T.REQUESTS_BASE, T.LINK_STATE_BASE,
                                 T.CONTROL_BASE)], 120)
        print(f"{self.driver}: worker and {len(self.units)} compute units up "
              f"({', '.join(self.sites)}); logs in {self.tmp}", flush=True)

    def _vcsim(self, what: str) -> None:
        env = {**os.environ, "TANDEM_VCSIM_DIR": str(self.vcsim_dir),
               "TANDEM_VCSIM_ARGS": f"-cluster {len(self.sites)}"}
        env.pop("TANDEM_VCSIM_PORT", None)  # picked at start
        if what == "up":
            self.vcsim_started = True  # even a failed start is followed by a `down`
        got = subprocess.run([sys.executable, str(VCSIMCTL), what], env=env,
                             capture_output=True, text=True, timeout=900)
        if got.returncode != 0:
            raise RuntimeError(f"vcsimctl {what} failed:\n{got.stdout}{got.stderr}")

    def vsphere_env(self, site: str) -> dict[str, str]:
        """The TANDEM_VSPHERE_* of a site's unit: its own cluster and folder of the simulator."""
        u = urlsplit((self.vcsim_dir / "url").read_text().strip())
        return {"TANDEM_VSPHERE_URL": f"https://{u.hostname}:{u.port}{u.path}",
                "TANDEM_VSPHERE_USER": u.username or "",
                "TANDEM_VSPHERE_PASSWORD": u.password or "",
                "TANDEM_VSPHERE_CA_FILE": str(self.vcsim_dir / "cert.pem"),
                "TANDEM_VSPHERE_DATACENTER": "DC0",
                "TANDEM_VSPHERE_CLUSTER": f"DC0_C{self.sites.index(site)}",
                "TANDEM_VSPHERE_FOLDER": f"tandem-{site}"}

    def _unit(self, i: int, site: str) -> None:
        from tandem.services.compute.procs import start_unit

        vsphere = self.driver == "vsphere"
        self.units[site] = start_unit(
            site, self.broker, self.prefix, self.tmp, self.driver,
            env=self.vsphere_env(site) if vsphere else None,
            fail=",".join(self.fail) if not vsphere and site == ROLLBACK_SITE else "",
            capacity_interval_s=None)

    def check_alive(self) -> None:
        if self.workers.exits:
            raise RuntimeError(f"the worker exited ({self.workers.exits}); see "
                               f"{self.workers.log(0)}")
        for site, p in self.units.items():
            if p.poll() is not None:
                raise RuntimeError(f"compute unit {site} exited with {p.returncode}; see "
                                   f"{self.tmp / f'compute-{site}.log'}")

    def exits(self) -> int:
        return len(self.workers.exits) + sum(p.poll() is not None for p in self.units.values())

    # ------------------------------------------------------------------------- vSphere fault
    def govc(self, *args: str) -> str:
        env = {**os.environ, "GOVC_URL": (self.vcsim_dir / "url").read_text().strip(),
               "GOVC_TLS_CA_CERTS": str(self.vcsim_dir / "cert.pem")}
        got = subprocess.run([str(GOVC), *args], env=env, capture_output=True, text=True,
                             timeout=60)
        if got.returncode != 0:
            raise RuntimeError(f"govc {' '.join(args)}: {got.stderr.strip()}")
        return got.stdout

    def fail_power_on(self, vms: int) -> Callable[[str], Awaitable[None]]:
        """Before a rollback order: its VMs made powered off in the rollback site's folder
        (what a crash between creation and power-on leaves; the unit's create converges on
        them), then their hosts put in maintenance mode, so vSphere refuses the power-on."""
        async def setup(wid: str) -> None:
            await asyncio.to_thread(self._block_power_on, wid, vms)
        return setup

    def _block_power_on(self, wid: str, vms: int) -> None:
        from tandem.services.compute.vsphere import VsphereConfig, VsphereDriver

        d = VsphereDriver(VsphereConfig.from_env(self.vsphere_env(ROLLBACK_SITE)))
        try:
            for j in range(vms):
                d.create(f"{wid}-app-{j}", wid, 1, 1, 1, power_on=False)
        finally:
            d.close()
        hosts: set[str] = set()
        for j in range(vms):
            [path] = self.govc("find", "/", "-type", "m", "-name", f"{wid}-app-{j}").split()
            h = json.loads(self.govc("vm.info", "-json", path))["VirtualMachines"][0][
                "Runtime"]["Host"]
            hosts.add(self.govc("ls", "-L", f"{h['Type']}:{h['Value']}").strip())
        for h in sorted(hosts):
            self.govc("host.maintenance.enter", h)
            self.in_maintenance.append(h)

    async def maintenance_exit(self) -> None:
        while self.in_maintenance:
            await asyncio.to_thread(self.govc, "host.maintenance.exit", self.in_maintenance[-1])
            self.in_maintenance.pop()

    # ------------------------------------------------------------------------- stop
    async def down(self, keep_topics: bool) -> None:
        """Stop what was started, by PID: the worker, the units, the simulator; the topics."""
        from tandem.services.kafka_admin import delete_topics_with_prefix

        from tandem.services.compute.procs import stop_units

        self.workers.stop_all()
        stop_units(self.units.values())
        if self.vcsim_started:
            try:
                await asyncio.to_thread(self._vcsim, "down")
            except Exception as exc:  # say it: a simulator left running is the user's to stop
                print(f"could not stop the simulator in {self.vcsim_dir}: {exc}", flush=True)
        if not keep_topics:
            await delete_topics_with_prefix(self.broker, self.prefix)


Rec = tuple[float, float, Any]  # record timestamp ms, seen by the benchmark ms, message


class Recorder:
    """Decisions, statuses, compute commands and acks of one prefix, as committed."""

    def __init__(self, broker: str, prefix: str, sites: list[str]) -> None:
        from tandem.streams import topics as T

        self.broker = broker
        name = lambda base: T.SPECS[base].name(prefix)  # noqa: E731
        self.kinds = {name(T.DECISIONS_BASE): "decision", name(T.WORKLOAD_STATUS_BASE): "status",
                      name(T.COMPUTE_ACKS_BASE): "ack"}
        self.kinds |= {T.compute_commands_topic(s, prefix): "command" for s in sites}
        self.decisions: dict[str, list[Rec]] = {}
        self.statuses: dict[str, list[Rec]] = {}
        self.sent: dict[str, Rec] = {}  # command id -> its first record (resends share the id)
        self.acks: dict[str, Rec] = {}  # command id -> its first ack
        self.undo: dict[str, list[str]] = {}  # workload -> undo command ids
        self.order_ms: dict[str, float] = {}
        self.changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer

        self._consumer = AIOKafkaConsumer(*self.kinds, bootstrap_servers=self.broker,
                                          group_id=None, isolation_level="read_committed",
                                          auto_offset_reset="earliest", fetch_max_wait_ms=10)
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        from tandem.v1 import commands_pb2 as C, decision_pb2 as D

        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            seen = time.time() * 1000
            for tp, recs in batch.items():
                kind = self.kinds[tp.topic]
                for r in recs:
                    if kind == "decision":
                        d = D.Decision.FromString(r.value)
                        self.decisions.setdefault(d.workload_id, []).append((r.timestamp, seen, d))
                    elif kind == "status":
                        s = D.WorkloadStatus.FromString(r.value)
                        self.statuses.setdefault(s.workload_id, []).append((r.timestamp, seen, s))
                    elif kind == "command":
                        c = C.ComputeCommand.FromString(r.value)
                        if c.command_id not in self.sent:
                            self.sent[c.command_id] = (r.timestamp, seen, c)
                            if c.command_id.startswith("undo/"):
                                self.undo.setdefault(c.vm.workload_id, []).append(c.command_id)
                    else:
                        a = C.ComputeAck.FromString(r.value)
                        self.acks.setdefault(a.command_id, (r.timestamp, seen, a))
            if batch:
                self.changed.set()

    def final(self, wid: str) -> int:
        """The workload's phase once it is settled (ACTIVE, REJECTED, ROLLED_BACK), else 0."""
        from tandem.v1 import decision_pb2 as D

        ends = (D.WORKLOAD_PHASE_ACTIVE, D.WORKLOAD_PHASE_REJECTED, D.WORKLOAD_PHASE_ROLLED_BACK)
        return next((s.phase for _, _, s in self.statuses.get(wid, []) if s.phase in ends), 0)

    async def wait_done(self, wids: list[str], label: str, timeout: float,
                        alive: Callable[[], None]) -> None:
        """Until every workload is settled; a progress line every 2 s on long waits."""
        t0 = time.monotonic()
        shown = t0
        while (done := sum(self.final(w) != 0 for w in wids)) < len(wids):
            alive()
            now = time.monotonic()
            if now - t0 > timeout:
                raise RuntimeError(f"{label}: {len(wids) - done} of {len(wids)} workloads not "
                                   f"settled after {timeout:.0f} s")
            if now - shown >= 2.0:
                shown = now
                print(f"  {label}: {done}/{len(wids)} settled ({now - t0:.0f} s; "
                      f"{self._where(wids)})", flush=True)
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 0.5)
            except asyncio.TimeoutError:
                pass

    def _where(self, wids: list[str]) -> str:
        """How many workloads stand at each phase/step (progress of a long wait)."""
        from tandem.v1 import decision_pb2 as D

        at: dict[str, int] = {}
        for w in wids:
            ss = self.statuses.get(w)
            k = "ordered" if not ss else D.WorkloadPhase.Name(ss[-1][2].phase).removeprefix(
                "WORKLOAD_PHASE_").lower() + (f" step {ss[-1][2].steps_done + 1}" if ss[-1][
                    2].phase == D.WORKLOAD_PHASE_PROVISIONING else "")
            at[k] = at.get(k, 0) + 1
        return ", ".join(f"{n} {k}" for k, n in sorted(at.items()))

    def units(self, wids: list[str]) -> dict[str, dict[str, float]]:
        """Per site, over these workloads' commands: how many, the driver time they took, and
        the share of the site's span (first command sent → last ack) its unit spent in the
        driver: near 100 % the unit, applying one command at a time, is the bottleneck."""
        ws = set(wids)
        per: dict[str, list[tuple[float, float, float]]] = {}
        for cid, (ts, _, c) in self.sent.items():
            if c.vm.workload_id in ws and cid in self.acks:
                per.setdefault(c.site_id, []).append((ts, self.acks[cid][0],
                                                      self.acks[cid][2].duration_ms))
        out = {}
        for site, xs in sorted(per.items()):
            span = max(x[1] for x in xs) - min(x[0] for x in xs)
            busy = sum(x[2] for x in xs)
            out[site] = {"commands": len(xs), "driver_ms": round(busy, 1),
                         "span_ms": span, "busy": round(busy / span, 3) if span > 0 else 0.0}
        return out

    def _steps(self, d: Any, prefix: str = "") -> list[PT.Mark | PT.Step]:
        out: list[PT.Mark | PT.Step] = []
        for st in d.steps:
            cmds = self._cmds([c.command_id for c in st.compute])
            if cmds:
                out.append(PT.Step(prefix + st.what, cmds))
        return out

    def _cmds(self, ids: list[str]) -> tuple[PT.Cmd, ...]:
        from tandem.v1 import commands_pb2 as C

        return tuple(PT.Cmd(self.sent[i][0], self.acks[i][0], self.acks[i][2].duration_ms,
                            self.sent[i][2].site_id,
                            self.acks[i][2].status == C.ACK_STATUS_FAILED)
                     for i in ids if i in self.sent and i in self.acks)

    def summary(self, wids: list[str], rollback: bool) -> dict[str, Any]:
        """Figures and where the time went, over the workloads that reached the expected end."""
        from tandem.v1 import decision_pb2 as D

        want = D.WORKLOAD_PHASE_ROLLED_BACK if rollback else D.WORKLOAD_PHASE_ACTIVE
        first = lambda xs, pred: next((x for x in xs if pred(x[2])), None)  # noqa: E731
        figs: dict[str, list[float]] = {}
        lines: list[PT.Timeline] = []
        outcomes: dict[str, int] = {}
        sites: dict[str, int] = {}
        reasons: list[str] = []
        for w in wids:
            ph = D.WorkloadPhase.Name(self.final(w)) if self.final(w) else "none"
            outcomes[ph] = outcomes.get(ph, 0) + 1
            ss, ds, o = self.statuses.get(w, []), self.decisions.get(w, []), self.order_ms[w]
            dec = first(ds, lambda d: d.kind == D.DECISION_KIND_PLACED)
            end = first(ss, lambda s: s.phase == want)
            if dec is None or end is None:
                continue
            for p in dec[2].placements:
                sites[p.site_id] = sites.get(p.site_id, 0) + 1
            parts: list[PT.Mark | PT.Step] = [
                PT.Mark("decider: order → decision", dec[0], PT.DECIDER), *self._steps(dec[2])]
            figs.setdefault("order → decision seen", []).append(dec[1] - o)
            if rollback:
                failed = first(ss, lambda s: s.phase == D.WORKLOAD_PHASE_FAILED)
                rbd = first(ds, lambda d: d.kind == D.DECISION_KIND_ROLLED_BACK)
                if failed is None or rbd is None:
                    continue
                reasons.append(failed[2].reason)
                parts += [PT.Mark("executor: → FAILED status", failed[0]),
                          PT.Step("undo", self._cmds(self.undo.get(w, []))),
                          PT.Mark("executor verdict → decider: ROLLED_BACK decision", rbd[0],
                                  PT.DECIDER),
                          # the rolled-back decision's own step (deleting what is left: NOOPs)
                          *self._steps(rbd[2], "ROLLED_BACK decision: "),
                          PT.Mark("executor: → ROLLED_BACK status", end[0])]
                figs.setdefault("order → FAILED seen", []).append(failed[1] - o)
                figs.setdefault("FAILED seen → ROLLED_BACK seen", []).append(end[1] - failed[1])
                figs.setdefault("order → ROLLED_BACK seen", []).append(end[1] - o)
            else:
                parts.append(PT.Mark("executor: → ACTIVE status", end[0]))
                figs.setdefault("decision seen → ACTIVE seen", []).append(end[1] - dec[1])
                figs.setdefault("order → ACTIVE seen", []).append(end[1] - o)
            lines.append(PT.timeline(o, parts, end[1]))
        out: dict[str, Any] = {
            "workloads": len(wids), "done": len(lines), "outcomes": outcomes, "sites": sites,
            "ms": {k: PT.stats(v) for k, v in figs.items()},
            "segments_p50_ms": PT.medians(lines), "shares": PT.shares(lines),
            "units": self.units(wids)}
        if reasons:
            out["failure_reason_example"] = reasons[0][:300]
        return out

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._consumer.stop()
