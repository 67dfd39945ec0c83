"""How the command line shows the API's answers to people (rich): decisions with their
explanation, workloads, the topology, events, errors. `--json` bypasses all of it.

Why here and not in the servicers: presentation is the client's; the server answers messages.
Every function is pure (message in, renderable out), so they are tested without a terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from google.protobuf.message import Message
from google.rpc import error_details_pb2
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tandem.v1 import api_pb2, approval_pb2, decision_pb2

D = decision_pb2
_GOOD = {D.DECISION_KIND_PLACED, D.DECISION_KIND_RELEASED, D.DECISION_KIND_REROUTED,
         D.DECISION_KIND_MIGRATED, D.DECISION_KIND_REROUTED_AND_MIGRATED}


def kind(d: decision_pb2.Decision) -> str:
    return D.DecisionKind.Name(d.kind).removeprefix("DECISION_KIND_").lower()


def phase(p: int) -> str:
    return D.WorkloadPhase.Name(p).removeprefix("WORKLOAD_PHASE_").lower()


def order_state(s: int) -> str:
    name = api_pb2.ServiceOrderState.Name(s).removeprefix("SERVICE_ORDER_STATE_")
    head, *rest = name.lower().split("_")
    return head + "".join(w.title() for w in rest)  # TMF641 spelling: inProgress


def _placements(ps: Iterable[decision_pb2.GroupPlacement]) -> str:
    return ", ".join(f"{p.group_id}×{p.count}@{p.site_id}" if p.count
                     else f"{p.group_id}@{p.site_id}" for p in ps) or "-"


def decision_view(d: decision_pb2.Decision) -> RenderableType:
    """A decision as a person reads it: what, where, which paths, why, and what lost."""
    style = "green" if d.kind in _GOOD else "red" if d.kind == D.DECISION_KIND_REJECTED \
        else "yellow"
    head = Text.assemble((kind(d).upper(), f"bold {style}"), "  ",
                         (f"{d.workload_id}", "bold"), f" (tenant {d.tenant or '-'}",
                         f", revision {d.revision})" if d.revision else ")")
    parts: list[RenderableType] = [head]
    if d.rejection.constraint:
        parts.append(Text(f"failed constraint: {d.rejection.constraint} — {d.rejection.detail}",
                          style="red"))
    if d.placements:
        parts.append(f"placed: {_placements(d.placements)}   cost {d.cost:.2f}   "
                     f"worst latency {d.max_latency_ms:.1f} ms")
    if d.paths:
        t = Table(title="paths", title_justify="left", show_edge=False)
        for col in ("demand", "route", "Mbit/s", "latency ms"):
            t.add_column(col, justify="right" if col[0].isupper() or col[0] == "l" else "left")
        for p in d.paths:
            t.add_row(p.demand_id, " → ".join(p.site_ids), f"{p.bandwidth_mbps:,.0f}",
                      f"{p.latency_ms:.1f}")
        parts.append(t)
    if d.explanation.summary:
        parts.append(Text.assemble(("why: ", "bold"), d.explanation.summary))
    if d.explanation.alternatives:
        t = Table(title="alternatives weighed", title_justify="left", show_edge=False)
        for col in ("placements", "cost", "latency ms", "score", "lost because"):
            t.add_column(col)
        for a in d.explanation.alternatives:
            t.add_row(_placements(a.placements), f"{a.cost:.2f}", f"{a.max_latency_ms:.1f}",
                      f"{a.score:.3g}", a.lost_because or Text("chosen", style="green"))
        parts.append(t)
    if d.HasField("hold"):
        parts.append(Text(f"held for approval until {d.hold.until.ToJsonString()} (hold "
                          f"{d.hold.hold_id}): nothing is carried out before `tandem approve "
                          f"{d.workload_id}`", style="yellow"))
    if d.steps:
        parts.append("steps: " + "; ".join(f"{s.index + 1}. {s.what}" for s in d.steps))
    if d.preempted_workload_ids:
        parts.append(Text(f"preempted: {', '.join(d.preempted_workload_ids)}", style="yellow"))
    return Group(*parts)


def status_line(st: decision_pb2.WorkloadStatus) -> str:
    steps = f" [{st.steps_done}/{st.steps}]" if st.steps else ""
    return f"{st.workload_id}: {phase(st.phase)}{steps} {st.reason}".rstrip()


def workloads_table(ws: Sequence[api_pb2.Workload]) -> Table:
    t = Table(show_edge=False)
    for col in ("workload", "tenant", "phase", "order", "admitted", "placements", "paths",
                "last decision"):
        t.add_column(col)
    for w in ws:
        t.add_row(w.workload_id, w.tenant, phase(w.phase), order_state(w.order_state),
                  "yes" if w.admitted else "no", _placements(w.decision.placements),
                  str(len(w.decision.paths)), kind(w.decision))
    return t


def workload_view(w: api_pb2.Workload) -> RenderableType:
    st = (f"   last status: {status_line(w.status)}" if w.HasField("status") else "")
    return Group(Text.assemble((w.workload_id, "bold"), f"  {phase(w.phase)}  order ",
                               (order_state(w.order_state), "bold"),
                               f"  admitted: {'yes' if w.admitted else 'no'}{st}"),
                 decision_view(w.decision))


def topology_view(topo: api_pb2.GetTopologyResponse) -> RenderableType:
    sites = Table(title="sites", title_justify="left", show_edge=False)
    for col in ("site", "jurisdiction", "vCPU used/total", "GiB used/total", "workloads"):
        sites.add_column(col)
    for s in topo.sites:
        cap = s.site.capacity
        sites.add_row(s.site.site_id, s.site.jurisdiction, f"{s.used.vcpus:,.0f}/{cap.vcpus:,.0f}",
                      f"{s.used.memory_gib:,.0f}/{cap.memory_gib:,.0f}", str(s.workloads))
    links = Table(title="links", title_justify="left", show_edge=False)
    for col in ("link", "ends", "state", "capacity a→b / b→a", "reserved a→b",
                "reserved b→a", "paths"):
        links.add_column(col)
    for ln in topo.links:
        links.add_row(ln.link.link_id, f"{ln.link.site_a}–{ln.link.site_b}",
                      _oper(ln.oper_state),
                      f"{ln.link.capacity_ab_mbps:,.0f} / {ln.link.capacity_ba_mbps:,.0f}",
                      f"{ln.reserved_ab_mbps:,.0f} ({ln.reserved_fraction_ab:.0%})",
                      f"{ln.reserved_ba_mbps:,.0f} ({ln.reserved_fraction_ba:.0%})",
                      str(ln.reservations))
    return Group(sites, links, Text(f"log position {topo.log_position}", style="dim"))


def _oper(s: int) -> str:
    return {1: "up", 2: "DOWN", 3: "degraded"}.get(s, "?")


def event_line(ev: api_pb2.WatchEvent) -> str:
    """One event on one line (`tandem watch`)."""
    which = ev.WhichOneof("event")
    if which == "decision":
        d = ev.decision
        what = f"decision {kind(d)} {d.workload_id} ({d.tenant}): {d.explanation.summary}"
    elif which == "status":
        what = f"status {status_line(ev.status)} → {order_state(ev.order_state)}"
    elif which == "alarm":
        a = ev.alarm
        what = (f"alarm {'cleared ' if a.cleared else ''}{a.site_id or a.link_id or a.workload_id}:"
                f" {a.text}")
    elif which == "link_state":
        ls = ev.link_state
        what = f"link {ls.link_id} {_oper(ls.state)} {ls.cause}".rstrip()
    elif which == "approval":
        what = approval_line(ev.approval)
    else:
        u = ev.utilisation
        what = (f"utilisation {u.link_id} from {u.from_site}: {u.utilisation_mbps:,.1f} Mbit/s"
                f" {u.latency_ms:.1f} ms")
    return what


def approval_line(a: approval_pb2.ApprovalEvent) -> str:
    state = approval_pb2.ApprovalState.Name(a.state).removeprefix("APPROVAL_STATE_").lower()
    what = f"approval {state} {a.workload_id} ({a.tenant}) hold {a.hold_id}"
    if a.state == approval_pb2.APPROVAL_STATE_PENDING:
        what += f" until {a.until.ToJsonString()}: {a.decision.explanation.summary}"
    elif a.by or a.comment:
        what += f": {' — '.join(x for x in (a.by, a.comment) if x)}"
    return what


def error_view(code: str, message: str, details: Sequence[Message]) -> RenderableType:
    """A failed call: its code, message, the fields named, and a rejected decision's view."""
    parts: list[RenderableType] = [Text.assemble((code, "bold red"), ": ", message)]
    for det in details:
        if isinstance(det, error_details_pb2.BadRequest):
            for v in det.field_violations:
                parts.append(Text(f"  field {v.field}: {v.description}", style="red"))
        elif isinstance(det, error_details_pb2.ErrorInfo):
            parts.append(Text(f"  reason {det.reason}", style="dim"))
        elif isinstance(det, decision_pb2.Decision):
            parts.append(decision_view(det))
    return Group(*parts)
