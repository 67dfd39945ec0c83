"""`tandem check`: an independent feasibility check of a plan (`tandem.check`).

    tandem check --topology data/zoo/Abilene.graphml --requests reqs.jsonl --plan decisions.jsonl

The plan is JSON lines, one `tandem.v1.Decision` per line in the protobuf JSON mapping (what
`tandem plan --out` writes; blank lines skipped); the request file is the one `tandem plan`
reads (docs/ENGINE.md), parsed by the same function. Prints one row per violation (plan line,
workload, rule, detail) or "0 violations"; exit status 1 when there is any, 2 for a file
that cannot be used (the message names file, line and field).
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("check", help="check a plan against every rule, independently of the engine")
    p.add_argument("--topology", required=True, help="GraphML, SNDlib or node-link JSON file")
    p.add_argument("--requests", required=True, help="the JSON-lines request file of the plan")
    p.add_argument("--plan", required=True, help="JSON-lines decisions (tandem plan --out)")
    p.set_defaults(func=handle)


def read_plan(path: str) -> list[tuple[int, Any]]:
    """[(line, engine Decision)]; UserError naming file, line and field for a bad line."""
    from google.protobuf import json_format

    from tandem import pbconvert
    from tandem.cli import UserError
    from tandem.v1 import decision_pb2

    from tandem.services.cli_plan import json_lines

    out: list[tuple[int, Any]] = []
    for no, obj in json_lines(path, "plan"):
        try:
            pb = json_format.ParseDict(obj, decision_pb2.Decision())
        except json_format.ParseError as exc:
            raise UserError(f"{path}: line {no}: {exc}") from None
        if pb.kind == decision_pb2.DECISION_KIND_UNSPECIFIED:
            raise UserError(f"{path}: line {no}: field 'kind' is missing or unspecified")
        if not pb.workload_id:
            raise UserError(f"{path}: line {no}: field 'workloadId' is missing or empty")
        out.append((no, pbconvert.decision_from_pb(pb)))
    return out


def handle(args: argparse.Namespace) -> int:
    from tandem.check import check_plan
    from tandem.cli import UserError
    from tandem.engine.loaders import TopologyFileError, load_topology
    from tandem.pbconvert import request_from_pb
    from tandem.services.cli_plan import read_requests

    try:
        topo = load_topology(args.topology)
    except TopologyFileError as exc:
        raise UserError(str(exc)) from None
    requests = [request_from_pb(msg, rid) for _, op, (rid, msg) in read_requests(args.requests)
                if op == "place"]
    plan = read_plan(args.plan)
    violations = check_plan(topo, requests, [d for _, d in plan])
    admitted = sum(1 for _, d in plan if d.admitted)
    print(f"checked {len(plan)} decisions ({admitted} admitting a workload) against "
          f"{len(topo.sites)} sites, {len(topo.links)} links")
    if not violations:
        print("0 violations")
        return 0
    print(f"\n{'line':>6}  {'workload':<20}{'rule':<22}detail")
    for v in violations:
        print(f"{plan[v.index][0]:>6}  {v.workload_id:<20}{v.rule:<22}{v.detail}")
    print(f"\n{len(violations)} violation(s)")
    return 1
