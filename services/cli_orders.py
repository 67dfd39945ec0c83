"""`tandem place | whatif | release | approve | workloads | topology | watch`: the command line on the
northbound gRPC API (docs/API.md), for people and scripts.

Why through the API and not onto Kafka like `tandem demo`: the API is the front door OSS
systems use — it checks the order as the decider would, derives the idempotency key, waits
for the decision and reports the status codes — so the command line shows exactly what an OSS
system gets, tenant isolation and all. Results go to stdout (rich tables, or `--json`: the
protobuf JSON mapping, one object per answer or event); progress and errors to stderr.

Where the API is: `--api HOST:PORT` (env TANDEM_API, default 127.0.0.1:50051); `--token`
(TANDEM_API_TOKEN); TLS with `--ca`, mutual TLS with `--cert` and `--key` (TANDEM_API_CA,
TANDEM_API_CERT, TANDEM_API_KEY). A failed call exits 1 with its code and details; a usage
mistake exits 2.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

COMMANDS = ("place", "whatif", "release", "approve", "workloads", "topology", "watch")


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("API")
    g.add_argument("--api", help="server HOST:PORT (env TANDEM_API; default 127.0.0.1:50051)")
    g.add_argument("--token", help="bearer token (env TANDEM_API_TOKEN)")
    g.add_argument("--ca", help="PEM CA of the server's certificate: TLS (env TANDEM_API_CA)")
    g.add_argument("--cert", help="client certificate for mutual TLS (env TANDEM_API_CERT)")
    g.add_argument("--key", help="client key for mutual TLS (env TANDEM_API_KEY)")
    g.add_argument("--timeout", type=float, default=60.0, help="call deadline, s (default 60)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("place", help="order a workload through the API (PlaceAndConnect)")
    p.add_argument("order", help="WorkloadRequest as JSON (protobuf JSON mapping); - for stdin")
    p.add_argument("--idempotency-key", dest="idem",
                   help="default: derived from the order's content (the same file twice is "
                        "one order)")
    p.add_argument("--wait", action="store_true",
                   help="wait until the workload is active (or failed), showing progress")
    p.add_argument("--approval", action="store_true",
                   help="hold the decision for an approval (tandem approve) before anything "
                        "is carried out")
    p.add_argument("--hold-seconds", type=int, default=0,
                   help="with --approval: how long the decision is held (default 900)")
    _common(p)
    p = sub.add_parser("whatif", help="what the engine would decide now (nothing is sent)")
    p.add_argument("order", help="WorkloadRequest as JSON; - for stdin")
    _common(p)
    p = sub.add_parser("release", help="release a workload through the API")
    p.add_argument("workload_id")
    p.add_argument("--tenant", default="", help="its tenant (default: the token's)")
    p.add_argument("--idempotency-key", dest="idem", help="default: release-<tenant>-<id>")
    _common(p)
    p = sub.add_parser("approve", help="approve (or --reject) the order held for a workload")
    p.add_argument("workload_id")
    p.add_argument("--reject", action="store_true", help="reject it: what it holds is released")
    p.add_argument("--comment", default="", help="why (kept in the approval event)")
    p.add_argument("--hold-id", default="", help="the hold judged (default: the workload's "
                                                "current one, read first)")
    p.add_argument("--idempotency-key", dest="idem",
                   help="default: approve|reject-<workload>-<hold id>")
    _common(p)
    p = sub.add_parser("workloads", help="list workloads, or show one with its decision")
    p.add_argument("workload_id", nargs="?", help="show this one (GetWorkload)")
    p.add_argument("--tenant", default="")
    p.add_argument("--site", default="", help="with a group placed there")
    p.add_argument("--link", default="", help="with a path crossing it")
    p.add_argument("--phase", action="append", default=[],
                   help="active, provisioning, decided, ... (repeatable)")
    _common(p)
    p = sub.add_parser("topology", help="sites and links with their state and reservations")
    _common(p)
    p = sub.add_parser("watch", help="follow decisions, statuses, alarms, link state, "
                                     "utilisation (WatchEvents)")
    p.add_argument("--kind", action="append", default=[],
                   help="decision, workload_status, alarm, link_state, utilisation, approval "
                        "(repeatable)")
    p.add_argument("--site", default="")
    p.add_argument("--tenant", default="")
    p.add_argument("--from-start", action="store_true", help="from the oldest retained event")
    p.add_argument("--position", default="", help="resume after the event with this position")
    p.add_argument("--count", type=int, default=0, help="stop after this many events")
    _common(p)
    for name in COMMANDS:
        sub.choices[name].set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    import grpc

    from tandem.services.api.client import Target, details_of
    from tandem.services.api.present import error_view

    try:
        target = Target.from_args(args)
        return asyncio.run(_HANDLERS[args.command](args, target))
    except (ValueError, OSError) as exc:
        # Said here rather than raised as tandem.cli.UserError: under `python -m tandem.cli`
        # that class is another one than the dispatcher's, and a traceback would show.
        print(f"tandem: error: {exc}", file=sys.stderr)
        return 2
    except grpc.aio.AioRpcError as err:
        _err().print(error_view(err.code().name, err.details() or "", details_of(err)))
        return 1


def _out() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def _err() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _json(msg: Any) -> None:
    from google.protobuf import json_format

    print(json_format.MessageToJson(msg, preserving_proto_field_name=True, indent=None))


def _order(path: str) -> Any:
    from google.protobuf import json_format

    from tandem.v1 import workload_pb2

    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    try:
        return json_format.Parse(text, workload_pb2.WorkloadRequest())
    except json_format.ParseError as exc:
        raise ValueError(f"{path}: not a WorkloadRequest in JSON: {exc}") from None


# ------------------------------------------------------------------------------ handlers
async def _place(args: argparse.Namespace, target: Any) -> int:
    import asyncio

    from tandem.services.api import present
    from tandem.v1 import api_pb2

    w = _order(args.order)
    if args.approval:
        w.approval.required, w.approval.hold_seconds = True, args.hold_seconds
    key = args.idem or "cli-" + hashlib.sha256(w.SerializeToString(deterministic=True)
                                               ).hexdigest()[:32]
    async with target.channel() as ch:
        stub = target.stub(ch)
        progress = None
        if args.wait:  # statuses followed from before the order is sent: none is missed
            ready = asyncio.Event()
            progress = asyncio.create_task(_progress(stub, target, w.workload_id, w.tenant,
                                                     ready))
            waiter = asyncio.create_task(ready.wait())
            await asyncio.wait({waiter, progress}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        try:
            reply = await stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
                workload=w, idempotency_key=key, wait_active=args.wait),
                timeout=args.timeout, metadata=target.metadata)
        finally:
            if progress is not None:
                progress.cancel()
                await asyncio.gather(progress, return_exceptions=True)
    if args.json:
        _json(reply)
        return 0
    out = _out()
    out.print(present.decision_view(reply.decision))
    line = f"order {present.order_state(reply.order_state)} (request {reply.request_id})"
    if reply.HasField("status"):
        line = f"{present.status_line(reply.status)} — {line}"
    out.print(line)
    return 0 if reply.status.phase in (0, 4) else 1  # unset (no --wait) or ACTIVE


async def _progress(stub: Any, target: Any, workload_id: str, tenant: str,
                    ready: Any) -> None:
    """Statuses of the workload on stderr while PlaceAndConnect(wait_active) waits; `ready`
    is set once the stream stands where it starts."""
    import grpc

    from tandem.services.api import present
    from tandem.v1 import api_pb2

    err = _err()
    call = stub.WatchEvents(api_pb2.WatchEventsRequest(
        kinds=[api_pb2.EVENT_KIND_WORKLOAD_STATUS], tenant=tenant), metadata=target.metadata)
    try:
        await call.initial_metadata()
        ready.set()
        with err.status(f"waiting for {workload_id} to be decided") as shown:
            async for ev in call:
                if ev.status.workload_id == workload_id:
                    line = present.status_line(ev.status)
                    err.print(f"  {line}")
                    shown.update(line)
    except grpc.aio.AioRpcError as e:
        if e.code() != grpc.StatusCode.CANCELLED:
            err.print(f"  (no progress: {e.code().name} {e.details()})")
    finally:
        call.cancel()


async def _whatif(args: argparse.Namespace, target: Any) -> int:
    from tandem.services.api import present
    from tandem.v1 import api_pb2

    async with target.channel() as ch:
        reply = await target.stub(ch).WhatIf(api_pb2.WhatIfRequest(workload=_order(args.order)),
                                             timeout=args.timeout, metadata=target.metadata)
    if args.json:
        _json(reply)
    else:
        _out().print(present.decision_view(reply.decision))
    return 0


async def _release(args: argparse.Namespace, target: Any) -> int:
    from tandem.services.api import present
    from tandem.v1 import api_pb2, workload_pb2

    key = args.idem or f"release-{args.tenant}-{args.workload_id}"
    async with target.channel() as ch:
        reply = await target.stub(ch).Release(api_pb2.ReleaseWorkloadRequest(
            release=workload_pb2.ReleaseRequest(tenant=args.tenant, workload_id=args.workload_id),
            idempotency_key=key), timeout=args.timeout, metadata=target.metadata)
    if args.json:
        _json(reply)
    else:
        _out().print(present.decision_view(reply.decision))
    return 0


async def _approve(args: argparse.Namespace, target: Any) -> int:
    from tandem.services.api import present
    from tandem.v1 import api_pb2

    verb = "reject" if args.reject else "approve"
    async with target.channel() as ch:
        stub = target.stub(ch)
        hold_id = args.hold_id
        if not hold_id:  # judge what is held now, under a key of its own
            got = await stub.GetWorkload(api_pb2.GetWorkloadRequest(
                workload_id=args.workload_id), timeout=args.timeout, metadata=target.metadata)
            hold_id = got.workload.decision.hold.hold_id
            if not hold_id:
                raise ValueError(f"{args.workload_id}: no order held for approval (it is "
                                 f"{present.phase(got.workload.phase)})")
        call = api_pb2.ApprovalCall(workload_id=args.workload_id, hold_id=hold_id,
                                    comment=args.comment,
                                    idempotency_key=args.idem or f"{verb}-{args.workload_id}-"
                                                                 f"{hold_id}")
        rpc = stub.Reject if args.reject else stub.Approve
        reply = await rpc(call, timeout=args.timeout, metadata=target.metadata)
    if args.json:
        _json(reply)
    else:
        _out().print(present.decision_view(reply.decision))
    return 0


def _phases(names: list[str]) -> list[Any]:
    from tandem.v1 import decision_pb2

    out = []
    for n in names:
        full = "WORKLOAD_PHASE_" + n.upper()
        if full not in decision_pb2.WorkloadPhase.keys():
            raise ValueError(f"--phase {n}: one of " + ", ".join(
                k.removeprefix("WORKLOAD_PHASE_").lower()
                for k in decision_pb2.WorkloadPhase.keys()[1:]))
        out.append(decision_pb2.WorkloadPhase.Value(full))
    return out


async def _workloads(args: argparse.Namespace, target: Any) -> int:
    from tandem.services.api import present
    from tandem.v1 import api_pb2

    async with target.channel() as ch:
        stub = target.stub(ch)
        if args.workload_id:
            got = await stub.GetWorkload(api_pb2.GetWorkloadRequest(
                workload_id=args.workload_id, tenant=args.tenant), timeout=args.timeout,
                metadata=target.metadata)
            if args.json:
                _json(got)
            else:
                _out().print(present.workload_view(got.workload))
            return 0
        items: list[Any] = []
        call = api_pb2.ListWorkloadsRequest(tenant=args.tenant, site_id=args.site,
                                            link_id=args.link, phases=_phases(args.phase),
                                            page_size=1000)
        while True:  # every page
            page = await stub.ListWorkloads(call, timeout=args.timeout, metadata=target.metadata)
            items += page.workloads
            if not page.next_page_token:
                break
            call.page_token = page.next_page_token
    if args.json:
        _json(api_pb2.ListWorkloadsResponse(workloads=items, log_position=page.log_position))
    else:
        _out().print(present.workloads_table(items))
    return 0


async def _topology(args: argparse.Namespace, target: Any) -> int:
    from tandem.services.api import present
    from tandem.v1 import api_pb2

    async with target.channel() as ch:
        topo = await target.stub(ch).GetTopology(api_pb2.GetTopologyRequest(),
                                                 timeout=args.timeout, metadata=target.metadata)
    if args.json:
        _json(topo)
    else:
        _out().print(present.topology_view(topo))
    return 0


async def _watch(args: argparse.Namespace, target: Any) -> int:
    import time

    from tandem.services.api import present
    from tandem.v1 import api_pb2

    kinds: list[Any] = []
    for k in args.kind:
        full = "EVENT_KIND_" + k.upper()
        if full not in api_pb2.EventKind.keys():
            raise ValueError(f"--kind {k}: one of decision, workload_status, alarm, "
                             "link_state, utilisation, approval")
        kinds.append(api_pb2.EventKind.Value(full))
    out, n = _out(), 0
    async with target.channel() as ch:  # no deadline: until --count or Ctrl-C
        async for ev in target.stub(ch).WatchEvents(api_pb2.WatchEventsRequest(
                kinds=kinds, site_id=args.site, tenant=args.tenant, from_start=args.from_start,
                position=args.position), metadata=target.metadata):
            if args.json:
                _json(ev)
            else:
                at = time.strftime("%H:%M:%S", time.localtime(ev.time))
                out.print(f"{at} {present.event_line(ev)}")
            sys.stdout.flush()
            n += 1
            if args.count and n >= args.count:
                break
    return 0


_HANDLERS = {"place": _place, "whatif": _whatif, "release": _release, "approve": _approve,
             "workloads": _workloads, "topology": _topology, "watch": _watch}
