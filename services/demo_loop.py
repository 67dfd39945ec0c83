"""Act two of `make demo`: the whole loop acting on an emulated WAN, told as it happens.

Act one (`tandem.services.demo`) shows decisions; this act shows Tandem *carrying them out*
with every part real: the 5-site ring of `infra/wan/ring5.json` built on Open vSwitch
(userspace datapath, one network namespace per site host), one SDN control unit per site
(os-ken, OpenFlow 1.3 flows and meters), one compute control unit per site (the simulated
hypervisor driver: no hypervisor is installed here), the stream processors, and the gRPC API
with tenant `acme`'s orders needing an approval. An order goes through the API, is held, is
approved, is carried out step by step; UDP traffic from the VM's address crosses the reserved
path; a link of the path goes down and the decider reroutes make-before-break; the release
removes every entry. Each run uses its own topic prefix and removes what it built.

It needs root (namespaces, OVS). Without root, or with an emulated WAN already up (somebody's
`tandem infra wan up`: it is not torn down for the demo), the act says why and is skipped.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from rich.console import Console

RING = Path(__file__).resolve().parents[1] / "infra" / "wan" / "ring5.json"
TENANT = "acme"
WORKLOAD = "shop"
OUT = Console(highlight=False, width=None if sys.stdout.isatty() else 110)


def _say(text: str) -> None:
    print(text, flush=True)


def _order() -> Any:
    from tandem.v1 import workload_pb2 as W

    return W.WorkloadRequest(
        tenant=TENANT, workload_id=WORKLOAD, priority=W.PRIORITY_CLASS_STANDARD,
        groups=[W.VmGroup(group_id="app", count=2, vcpus=2, memory_gib=4)],
        demands=[W.TrafficDemand(demand_id="feed", from_group="app", to_site="waw",
                                 bandwidth_mbps=8, max_latency_ms=40)],
        rules=W.Rules(vm_jurisdictions=["NL"]))


class Events:
    """WatchEvents of the tenant (decisions, statuses, approvals) in a queue, so each step of
    the act waits for the event it is about and the progress in between is printed."""

    def __init__(self, stub: Any) -> None:
        from tandem.v1 import api_pb2

        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.call = stub.WatchEvents(api_pb2.WatchEventsRequest(
            kinds=[api_pb2.EVENT_KIND_DECISION, api_pb2.EVENT_KIND_WORKLOAD_STATUS,
                   api_pb2.EVENT_KIND_APPROVAL], tenant=TENANT, from_start=True))
        self.task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        async for ev in self.call:
            await self.queue.put(ev)

    async def until(self, pred: Any, what: str, timeout: float = 90.0) -> Any:
        """The first event matching `pred`; statuses before it are printed as progress."""
        from tandem.services.api import present

        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {what} within {timeout:.0f} s")
            try:
                ev = await asyncio.wait_for(self.queue.get(), left)
            except asyncio.TimeoutError:
                raise TimeoutError(f"no {what} within {timeout:.0f} s") from None
            if ev.WhichOneof("event") == "status":
                _say(f"   {present.status_line(ev.status)}")
            if pred(ev):
                return ev

    async def close(self) -> None:
        self.call.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def _is_status(phase: int, revision: int) -> Any:
    def pred(ev: Any) -> bool:
        s = ev.status
        return (ev.WhichOneof("event") == "status" and s.workload_id == WORKLOAD
                and s.phase == phase and s.revision == revision)
    return pred


def _flows_on_path(layout: dict[str, Any], d: Any) -> list[tuple[str, int, str]]:
    """(site, entries of the reservation, meter rate at the ingress) along the decision's
    path, read from the switches themselves (ovs-ofctl)."""
    from tandem.sdn.intents import cookie_for
    from tandem.sdn.wanhosts import dump_flows, dump_meters

    p = d.paths[0]
    cookie = f"cookie={cookie_for(p.reservation_id, d.revision):#x}"
    rows = []
    for i, site in enumerate(p.site_ids):
        br = layout["sites"][site]["bridge"]
        n = sum(cookie in f for f in dump_flows(br))
        meter = ""
        if i == 0:
            rates = sorted(dump_meters(br).values())
            meter = ", ".join(f"{r / 1000:g} Mbit/s" for r in rates) or "none"
        rows.append((site, n, meter))
    return rows


def _entries_left(layout: dict[str, Any], *ds: Any) -> int:
    """Entries of the decisions' reservations, any generation, on every switch."""
    from tandem.sdn.wanhosts import entries_of

    rids = {p.reservation_id for d in ds for p in d.paths}
    return sum(len(entries_of(s["bridge"], rid)) for s in layout["sites"].values()
               for rid in rids)


def _show_switches(layout: dict[str, Any], d: Any) -> None:
    rows = _flows_on_path(layout, d)
    _say("   on the switches (ovs-ofctl): " + "; ".join(
        f"{site}: {n} entr{'y' if n == 1 else 'ies'}" + (f", meters {m}" if m else "")
        for site, n, m in rows))


async def _traffic(layout: dict[str, Any], d: Any, first: Any) -> None:
    """4 Mbit/s for 2 s from the first VM's address at its site to the demand's target, over
    the path `d` reserves (the VM and its group's block are those `first` created)."""
    from tandem.sdn.wanhosts import BlockAddresses, run_flow

    vm = next(c for s in first.steps for c in s.compute)
    block = next(c.install.match.ipv4_src for s in first.steps for c in s.sdn
                 if c.WhichOneof("op") == "install")
    src, dst = d.paths[0].site_ids[0], d.paths[0].site_ids[-1]
    hosts = BlockAddresses(layout)
    try:
        hosts.source(src, vm.ipv4_address, block, dst)
        res = await asyncio.to_thread(run_flow, layout["sites"][src]["netns"],
                                      layout["sites"][dst]["netns"],
                                      layout["sites"][dst]["host_ip"], 4, 2,
                                      src_ip=vm.ipv4_address)
    finally:
        hosts.remove()
    sent, got = res["sent"]["sent_bytes"], res["recv"]["bytes"]
    _say(f"   traffic: 4 Mbit/s for 2 s from {vm.vm.vm_name} ({vm.ipv4_address}, block {block}) "
         f"at {src} to {dst}: {got:,} of {sent:,} bytes received "
         f"({100.0 * got / max(sent, 1):.1f} %) over {' → '.join(d.paths[0].site_ids)}")


async def run_loop(broker: str, started_at: float, timeout: float = 90.0) -> bool:
    """Act two; True when it ran through (or was skipped, saying why)."""
    from tandem.services import cli_wan

    _say("\n== 6. the whole loop, acting: an emulated WAN on Open vSwitch, SDN and compute "
         "units per site, the gRPC API")
    began = time.monotonic()
    if os.geteuid() != 0:
        _say("   skipped: building the emulated WAN needs root (network namespaces, OVS)")
        return True
    import logging

    for noisy in ("tandem.decider", "tandem.streams", "tandem.services.api", "tandem.sdn",
                  "aiokafka.producer.sender"):  # the story is told on stdout; errors still show
        logging.getLogger(noisy).setLevel(logging.ERROR if noisy.startswith("aiokafka")
                                          else logging.WARNING)
    if cli_wan.STATE_FILE.exists():
        _say(f"   skipped: an emulated WAN is already up ({cli_wan.STATE_FILE}); the demo "
             "builds its own and does not tear yours down (`tandem infra wan down` first)")
        return True
    prefix = f"demo-{int(started_at)}-wan."
    run_dir = Path(".local") / "demo" / prefix.rstrip(".")
    run_dir.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        await _act(stack, cli_wan, broker, prefix, run_dir, timeout)
    gone = not cli_wan.STATE_FILE.exists()
    _say(f"   act two done in {time.monotonic() - began:.1f} s; the emulated WAN "
         f"{'removed' if gone else 'NOT removed (tandem infra wan down)'}, the units stopped")
    return gone


async def _act(stack: AsyncExitStack, cli_wan: Any, broker: str, prefix: str, run_dir: Path,
               timeout: float) -> None:
    import grpc

    from tandem.engine.loaders import load_topology
    from tandem.sdn.procs import Units
    from tandem.sdn.publish import _publish
    from tandem.services.api import present
    from tandem.services.api.approvals import Policy
    from tandem.services.api.server import create_server
    from tandem.services.api.stubs import TandemStub
    from tandem.services.compute.procs import start_unit, stop_units
    from tandem.services.demo import wait_for
    from tandem.services.kafka_admin import ensure_topics
    from tandem.streams import topics as T
    from tandem.streams.app import create_app
    from tandem.streams.settings import Settings
    from tandem.v1 import api_pb2, approval_pb2, decision_pb2 as D

    started = time.monotonic()
    topo = load_topology(RING)
    ovs_up = subprocess.run([str(cli_wan.OVS_SH), "status"], capture_output=True).returncode == 0
    await asyncio.to_thread(cli_wan.ensure_ovs)
    if not ovs_up:  # started for the demo: stopped after it (someone else's OVS is left alone)
        stack.callback(subprocess.run, [str(cli_wan.OVS_SH), "stop"], capture_output=True)
    layout = (await asyncio.to_thread(cli_wan.wan_up, topo, 1.0))["layout"]
    stack.callback(cli_wan.wan_down)
    sites = sorted(layout["sites"])
    await ensure_topics(broker, T.core_topics(prefix) + T.site_topics(sites, prefix))
    tandem = create_app(Settings(broker=broker, topic_prefix=prefix, app_id=f"{prefix}tandem",
                                 web_enabled=False, data_dir=str(run_dir / "streams")))
    await tandem.app.start()
    stack.push_async_callback(tandem.app.stop)
    await _publish(broker, topo, layout, prefix)
    units = Units(layout, broker, prefix, run_dir)
    stack.callback(lambda: [units.stop(s) for s in list(units.procs)])
    for site in sites:
        units.start(site)
    computes: list[subprocess.Popen[bytes]] = []
    stack.callback(stop_units, computes)
    for site in sites:
        computes.append(start_unit(site, broker, prefix, run_dir))
    await asyncio.to_thread(units.wait_connected, None, timeout)
    server, port = await create_server("127.0.0.1:0", broker, prefix,
                                       policy=Policy({TENANT: 600}))
    await server.start()
    stack.push_async_callback(server.stop, 0.5)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stack.push_async_callback(channel.close)
    stub = TandemStub(channel)
    await server.view.wait_serving(timeout)
    async def folded() -> bool:
        d = tandem.decider.decider
        return d is not None and len(d.topology.links) >= len(topo.links)

    await wait_for(folded, timeout, "the decider's fold of the WAN's inventory")
    _say(f"   {len(sites)} sites ({', '.join(sites)}) and {len(topo.links)} links built and "
         f"folded; {len(sites)} SDN units connected to their switches, {len(sites)} compute "
         f"units (simulated hypervisor), the API on 127.0.0.1:{port}, where tenant {TENANT}'s "
         f"orders need an approval ({time.monotonic() - started:.1f} s; logs in {run_dir})")
    events = Events(stub)
    stack.push_async_callback(events.close)

    _say(f"\n== 7. tenant {TENANT} orders {WORKLOAD!r} through the gRPC API "
         "(2 VMs in NL, 8 Mbit/s to waw within 40 ms): decided, and held for an approval\n")
    reply = await stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
        workload=_order(), idempotency_key="demo-shop"), timeout=timeout)
    OUT.print(present.decision_view(reply.decision))
    ev = await events.until(lambda e: e.WhichOneof("event") == "approval"
                            and e.approval.state == approval_pb2.APPROVAL_STATE_PENDING,
                            "approval request")
    _say(f"   order {present.order_state(reply.order_state)}; on tandem.approvals: "
         f"{present.approval_line(ev.approval)}")

    _say("\n== 8. the change board approves (Approve): the decision is carried out step by "
         "step, each step once every unit acknowledged the previous one\n")
    go = (await stub.Approve(api_pb2.ApprovalCall(
        workload_id=WORKLOAD, hold_id=reply.decision.hold.hold_id, comment="CHG-0042",
        idempotency_key="demo-cab"), timeout=timeout)).decision
    _say(f"   {go.explanation.summary.split(':')[0]}; steps: "
         + "; ".join(f"{s.index + 1}. {s.what}" for s in go.steps))
    await events.until(_is_status(D.WORKLOAD_PHASE_ACTIVE, go.revision), "ACTIVE", timeout)
    _show_switches(layout, go)
    await _traffic(layout, go, go)

    link = go.paths[0].link_ids[0]
    veth = layout["links"][link]["veth_a"]
    _say(f"\n== 9. link {link} of the path fails (its veth goes down): the SDN unit reports "
         "it, the decider reacts\n")
    subprocess.run(["ip", "link", "set", veth, "down"], check=True)
    stack.callback(subprocess.run, ["ip", "link", "set", veth, "up"], check=False)
    moved = (await events.until(lambda e: e.WhichOneof("event") == "decision"
                                and e.decision.workload_id == WORKLOAD
                                and e.decision.revision > go.revision, "reaction",
                                timeout)).decision
    OUT.print(present.decision_view(moved))
    await events.until(_is_status(D.WORKLOAD_PHASE_ACTIVE, moved.revision), "ACTIVE", timeout)
    _show_switches(layout, moved)
    await _traffic(layout, moved, go)

    _say("\n== 10. released through the API: paths removed, VMs deleted\n")
    rel = (await stub.Release(api_pb2.ReleaseWorkloadRequest(
        release=_release(), idempotency_key="demo-release"), timeout=timeout)).decision
    await events.until(_is_status(D.WORKLOAD_PHASE_RELEASED, rel.revision), "RELEASED",
                       timeout)
    _say(f"   entries of the workload left on the switches: {_entries_left(layout, go, moved)}; "
         "tearing the WAN down")


def _release() -> Any:
    from tandem.v1 import workload_pb2 as W

    return W.ReleaseRequest(tenant=TENANT, workload_id=WORKLOAD)
