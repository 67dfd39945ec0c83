"""Pure conversions and checks of the gRPC API: no grpc, no Kafka, no clock.

Why a module of its own: the servicers stay thin (convert, call the core, convert) and every
rule an OSS system can trip over — required fields, the idempotency key, paging, the field a
validation detail names — is tested here without a server.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from tandem.engine.decision import Decision as EngineDecision
from tandem.engine.state import State
from tandem.engine.topology import OperState, Topology
from tandem.events import derived_id
from tandem.pbconvert import link_to_pb, site_to_pb
from tandem.v1 import api_pb2, decision_pb2, inventory_pb2, link_state_pb2, workload_pb2
from tandem.validation import MAX_RECORD_BYTES

from tandem.services.api.errors import BadRequest
from tandem.services.api.status import order_state, phase_now

MAX_KEY = 200  # characters of an idempotency key
DEFAULT_PAGE = 100
MAX_PAGE = 1000

# The request's field names as the decider's checks spell them (on a RequestEvent), and as the
# API call spells them (the order sits under `workload` / `release`; request_id is derived
# from the idempotency key).
_FIELD_PREFIX = {"place": "workload", "release": "release", "request_id": "idempotency_key"}
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])?(?:\.[A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])?)*")


def request_id_for(tenant: str, key: str) -> str:
    """The request id an order travels under: derived from tenant and key, so the same key
    from the same tenant is the same request for the decider (which answers a request id once)
    and two tenants never collide."""
    return derived_id("api-request", tenant, key)


def order_digest(event: workload_pb2.RequestEvent) -> bytes:
    """The digest the decider stores for an answered request id (`Decider._on_request`): an
    idempotency key repeated with another order is told apart by it (ALREADY_EXISTS)."""
    op = event.WhichOneof("op")
    assert op is not None
    body = getattr(event, op).SerializeToString(deterministic=True)
    return hashlib.blake2b(body + op.encode(), digest_size=16).digest()


def field_of(detail: str) -> tuple[str, str]:
    """The field a validation detail names, as the API spells it, and the detail reworded with
    it: "request.place.groups[0].count = 0" → ("workload.groups[0].count",
    "workload.groups[0].count = 0"). ("", detail) when it names no field of the caller's."""
    m = _FIELD.match(detail)
    if m is None:
        return "", detail
    path = m.group(0)
    parts = path.split(".")
    if parts[0] == "request" and len(parts) > 1:  # the decider log's wrapper (DeciderInput)
        parts = parts[1:]
    base = parts[0].split("[", 1)[0]
    if base == "meta":  # the envelope is the server's, not the caller's
        return "", detail
    if base in _FIELD_PREFIX:
        parts[0] = _FIELD_PREFIX[base] + parts[0][len(base):]
    field = ".".join(parts)
    return field, field + detail[len(path):]


def check_key(key: str) -> list[tuple[str, str]]:
    """Violations of the idempotency key (required, printable, bounded)."""
    if not key:
        return [("idempotency_key", "required: the same key twice gives one effect")]
    if len(key) > MAX_KEY:
        return [("idempotency_key", f"{len(key)} characters (at most {MAX_KEY})")]
    if not key.isprintable():
        return [("idempotency_key", "must be printable characters")]
    return []


def check_place(call: api_pb2.PlaceAndConnectRequest | api_pb2.WhatIfRequest,
                need_key: bool) -> None:
    """The API's own rules on an order (the decider's rules are checked after, on its state)."""
    bad: list[tuple[str, str]] = []
    if need_key:
        bad += check_key(call.idempotency_key)  # type: ignore[union-attr]
    if not call.HasField("workload"):
        bad.append(("workload", "required"))
    else:
        w = call.workload
        if not w.tenant:
            bad.append(("workload.tenant", "required"))
        if not w.workload_id:
            bad.append(("workload.workload_id", "required"))
        if w.ByteSize() > MAX_RECORD_BYTES - 1024:
            bad.append(("workload", f"{w.ByteSize()} bytes (at most {MAX_RECORD_BYTES - 1024})"))
    if bad:
        raise BadRequest(bad)


def require_id(value: str, field: str) -> None:
    if not value:
        raise BadRequest([(field, "required")])
    if len(value) > MAX_KEY * 5:
        raise BadRequest([(field, f"{len(value)} characters (at most {MAX_KEY * 5})")])


def check_release(call: api_pb2.ReleaseWorkloadRequest) -> None:
    bad = check_key(call.idempotency_key)
    if not call.release.tenant:
        bad.append(("release.tenant", "required"))
    if not call.release.workload_id:
        bad.append(("release.workload_id", "required"))
    if bad:
        raise BadRequest(bad)


# ------------------------------------------------------------------------------- workloads
_PHASE = {
    decision_pb2.DECISION_KIND_REJECTED: decision_pb2.WORKLOAD_PHASE_REJECTED,
    decision_pb2.DECISION_KIND_RELEASED: decision_pb2.WORKLOAD_PHASE_RELEASED,
    decision_pb2.DECISION_KIND_PREEMPTED: decision_pb2.WORKLOAD_PHASE_RELEASED,
    decision_pb2.DECISION_KIND_ROLLED_BACK: decision_pb2.WORKLOAD_PHASE_ROLLED_BACK,
}


def phase_of(d: decision_pb2.Decision) -> int:
    """Where a workload stands after decision `d`, by the decision alone (before the executor
    said anything about carrying it out)."""
    return _PHASE.get(d.kind, decision_pb2.WORKLOAD_PHASE_DECIDED)


StatusOf = Callable[[str], "decision_pb2.WorkloadStatus | None"]


def _no_status(_wid: str) -> decision_pb2.WorkloadStatus | None:
    return None


def workload_of(d: decision_pb2.Decision, admitted: bool,
                status: decision_pb2.WorkloadStatus | None = None) -> api_pb2.Workload:
    """The API's view of a workload: its last decision and last status, the phase they say
    together (`status.phase_now`) and the TM Forum order state of that phase."""
    phase = phase_now(d, status, phase_of(d))
    w = api_pb2.Workload(workload_id=d.workload_id, tenant=d.tenant,
                         phase=phase,  # type: ignore[arg-type]
                         admitted=admitted, decision=d,
                         order_state=order_state(phase, d.kind))  # type: ignore[arg-type]
    if status is not None:
        w.status.CopyFrom(status)
    return w


@dataclass(frozen=True)
class Filter:
    tenant: str = ""
    site_id: str = ""
    link_id: str = ""
    phases: frozenset[int] = frozenset()

    def matches(self, w: api_pb2.Workload) -> bool:
        d = w.decision
        return ((not self.tenant or w.tenant == self.tenant)
                and (not self.site_id or any(p.site_id == self.site_id for p in d.placements))
                and (not self.link_id or any(self.link_id in p.link_ids for p in d.paths))
                and (not self.phases or w.phase in self.phases))


def encode_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(b"w1:" + last_id.encode()).decode()


def decode_token(token: str) -> str:
    """The workload id a page ended on; BadRequest for a token this server did not make."""
    if not token:
        return ""
    try:
        raw = base64.urlsafe_b64decode(token.encode())
    except (binascii.Error, ValueError):
        raw = b""
    if not raw.startswith(b"w1:"):
        raise BadRequest([("page_token", "not a token from a previous ListWorkloads page")])
    return raw[3:].decode(errors="replace")


def page(call: api_pb2.ListWorkloadsRequest, latest: Mapping[str, decision_pb2.Decision],
         admitted: Iterable[str], status_of: StatusOf = _no_status
         ) -> tuple[list[api_pb2.Workload], str]:
    """One page of the workloads matching the call's filters, ordered by id, and the token of
    the next page ("" on the last). `latest`: each workload's last decision; `status_of`: its
    last status."""
    if call.page_size > MAX_PAGE:
        raise BadRequest([("page_size", f"{call.page_size} (at most {MAX_PAGE})")])
    size = call.page_size or DEFAULT_PAGE
    after = decode_token(call.page_token)
    bad: list[tuple[str, str]] = []
    for p in call.phases:
        if p not in decision_pb2.WorkloadPhase.values():
            bad.append(("phases", f"{p}: not a value of WorkloadPhase"))
    if bad:
        raise BadRequest(bad)
    f = Filter(call.tenant, call.site_id, call.link_id, frozenset(call.phases))
    holding = set(admitted)
    out: list[api_pb2.Workload] = []
    for wid in sorted(latest):
        if wid <= after:
            continue
        w = workload_of(latest[wid], wid in holding, status_of(wid))
        if not f.matches(w):
            continue
        if len(out) == size:
            return out, encode_token(out[-1].workload_id)
        out.append(w)
    return out, ""


# -------------------------------------------------------------------------------- topology
_OPER = {OperState.UP: link_state_pb2.OPER_STATE_UP,
         OperState.DOWN: link_state_pb2.OPER_STATE_DOWN,
         OperState.DEGRADED: link_state_pb2.OPER_STATE_DEGRADED}


def topology_view(topology: Topology, state: State | None) -> tuple[list[api_pb2.SiteView],
                                                                    list[api_pb2.LinkView]]:
    """Sites and links with what is reserved on them (from the engine state the decider holds;
    None while nothing was ever ordered)."""
    used: dict[str, tuple[float, float, float]] = {}
    per_site: dict[str, int] = {}
    reserved: dict[str, list[float]] = {}
    crossings: dict[str, int] = {}
    if state is not None:
        used = dict(state.site_used)
        net = state.net
        for d, mbps in enumerate(state.used):
            reserved.setdefault(net.link_ids[d >> 1], [0.0, 0.0])[d & 1] = mbps
        for wl in state.workloads.values():
            for s in {site for _g, site, _n in wl.placements}:
                per_site[s] = per_site.get(s, 0) + 1
            for r in wl.paths:
                for lid in r.links:
                    crossings[lid] = crossings.get(lid, 0) + 1
    sites = []
    for sid in sorted(topology.sites):
        u = used.get(sid, (0.0, 0.0, 0.0))
        sites.append(api_pb2.SiteView(
            site=site_to_pb(topology.sites[sid]), workloads=per_site.get(sid, 0),
            used=inventory_pb2.ComputeCapacity(vcpus=u[0], memory_gib=u[1], storage_gib=u[2])))
    links = []
    at = state.net.at if state is not None else None
    for lid in sorted(topology.links):
        ln = topology.links[lid]
        ab, ba = reserved.get(lid, [0.0, 0.0])
        cap_ab, cap_ba = ln.capacity_from(ln.a, at), ln.capacity_from(ln.b, at)
        links.append(api_pb2.LinkView(
            link=link_to_pb(ln), oper_state=_OPER[ln.oper_state],
            capacity_factor=ln.capacity_factor, reserved_ab_mbps=ab, reserved_ba_mbps=ba,
            reserved_fraction_ab=_fraction(ab, cap_ab), reserved_fraction_ba=_fraction(ba, cap_ba),
            reservations=crossings.get(lid, 0)))
    return sites, links


def _fraction(used: float, cap: float) -> float:
    if cap > 0:
        return used / cap
    return 0.0 if used <= 1e-6 else float("inf")


def admitted_ids(workloads: Mapping[str, EngineDecision]) -> set[str]:
    return {wid for wid, d in workloads.items() if d.holds}
