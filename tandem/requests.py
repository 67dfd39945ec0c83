"""Workload request events: validity rules (pure).

Only what makes a request unreadable or meaningless is checked here (it goes to the dead-letter
topic); whether it can be satisfied is the engine's question (it yields a rejection).
"""

from __future__ import annotations

from collections.abc import Container

from tandem.v1 import workload_pb2
from tandem.validation import INVALID, UNKNOWN_REFERENCE, check_meta, check_ranges, require


def check_request(event: workload_pb2.RequestEvent, known_sites: Container[str],
                  now: float | None = None) -> None:
    check_meta(event, now)
    check_ranges(event)
    require(bool(event.request_id), INVALID, "request_id: empty (it is the idempotency key)")
    op = event.WhichOneof("op")
    require(op is not None, INVALID, "op: none of place, release, approval is set")
    if op == "release":
        require(bool(event.release.workload_id), INVALID, "release.workload_id: empty")
        return
    if op == "approval":
        require(bool(event.approval.workload_id), INVALID, "approval.workload_id: empty")
        return
    req = event.place
    require(bool(req.workload_id), INVALID, "place.workload_id: empty")
    require(len(req.groups) > 0, INVALID, "place.groups: a workload needs at least one VM group")
    groups: set[str] = set()
    for i, g in enumerate(req.groups):
        require(bool(g.group_id), INVALID, f"place.groups[{i}].group_id: empty")
        require(g.group_id not in groups, INVALID,
                f"place.groups[{i}].group_id = {g.group_id!r}: duplicate")
        require(g.count > 0, INVALID, f"place.groups[{i}].count = 0")
        groups.add(g.group_id)
    for i, d in enumerate(req.demands):
        where = f"place.demands[{i}]"
        require(d.from_group in groups, UNKNOWN_REFERENCE,
                f"{where}.from_group = {d.from_group!r}: no such group in the request")
        to = d.WhichOneof("to")
        require(to is not None, INVALID, f"{where}.to: none of to_group, to_site, to_location")
        if to == "to_group":
            require(d.to_group in groups, UNKNOWN_REFERENCE,
                    f"{where}.to_group = {d.to_group!r}: no such group in the request")
        elif to == "to_site":
            require(d.to_site in known_sites, UNKNOWN_REFERENCE,
                    f"{where}.to_site = {d.to_site!r}: no such site in the inventory")
    for i, aa in enumerate(req.rules.anti_affinity):
        for gid in aa.group_ids:
            require(gid in groups, UNKNOWN_REFERENCE,
                    f"place.rules.anti_affinity[{i}] names {gid!r}: no such group in the request")
