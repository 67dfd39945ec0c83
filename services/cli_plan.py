"""`tandem plan`: run the joint engine over a request file, offline, in order.

    tandem plan --topology data/zoo/Abilene.graphml --requests reqs.jsonl [--out decisions.jsonl]

The request file is JSON lines; each line is either a `tandem.v1.WorkloadRequest` in the
protobuf JSON mapping, or a `tandem.v1.RequestEvent` (`{"requestId": ..., "place": {...}}` or
`{"release": {"workloadId": ...}}`). Blank lines are skipped. See docs/ENGINE.md.

One decision per line (the `tandem.v1.Decision` JSON mapping) goes to `--out`, or to stdout
when no `--out` is given (then the summary goes to stderr so stdout stays JSON lines).

    tandem plan --topology data/generated/waxman-1000.graphml --generate 1000 --seed 1 \
        --requests /tmp/reqs.jsonl

writes 1,000 seeded requests from `tandem.engine.workgen` for that topology (one
`WorkloadRequest` per line, the format above) instead of planning, for benchmarks.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TextIO


def register(sub: Any) -> None:
    p = sub.add_parser("plan", help="place a file of workload requests with the joint engine")
    p.add_argument("--topology", required=True, help="GraphML, SNDlib or node-link JSON file")
    p.add_argument("--requests", required=True, help="JSON-lines request file (docs/ENGINE.md)")
    p.add_argument("--out", help="write decisions here (default: stdout)")
    p.add_argument("--generate", type=int, metavar="N",
                   help="write N seeded requests (tandem.engine.workgen) for the topology to "
                        "--requests, and exit without planning")
    p.add_argument("--seed", type=int, default=1, help="seed of --generate (default 1)")
    p.set_defaults(func=handle)


def write_requests(topology: Any, path: str, n: int, seed: int) -> None:
    """`n` workgen requests as JSON lines (`WorkloadRequest` protobuf JSON mapping)."""
    from google.protobuf import json_format

    from tandem.cli import UserError
    from tandem.engine.workgen import generate
    from tandem.pbconvert import request_to_pb

    lines = [json_format.MessageToJson(request_to_pb(r), indent=None)
             for r in generate(topology, n, seed)]
    try:
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot write: {exc.strerror}") from None


def json_lines(path: str, what: str) -> list[tuple[int, dict[str, Any]]]:
    """The non-blank lines of a JSON-lines file as (line number, object); a UserError naming
    the file and line when it cannot be read or a line is not a JSON object."""
    from tandem.cli import UserError

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the {what}: {exc}") from None
    out: list[tuple[int, dict[str, Any]]] = []
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: line {no}: not JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise UserError(f"{path}: line {no}: expected a JSON object, got {type(obj).__name__}")
        out.append((no, obj))
    return out


def read_requests(path: str) -> list[tuple[int, str, Any]]:
    """[(line, op, message)] with op "place" or "release"; UserError naming file, line, field."""
    from google.protobuf import json_format

    from tandem.cli import UserError
    from tandem.v1 import workload_pb2

    out: list[tuple[int, str, Any]] = []
    for no, obj in json_lines(path, "request file"):
        try:
            if "place" in obj or "release" in obj:
                ev = json_format.ParseDict(obj, workload_pb2.RequestEvent())
                op = ev.WhichOneof("op") or ""
                msg: Any = getattr(ev, op)
                rid = ev.request_id or f"line-{no}"
            else:
                op, msg = "place", json_format.ParseDict(obj, workload_pb2.WorkloadRequest())
                rid = f"line-{no}"
        except json_format.ParseError as exc:
            raise UserError(f"{path}: line {no}: {exc}") from None
        if op == "place" and not msg.workload_id:
            raise UserError(f"{path}: line {no}: field 'workloadId' is missing or empty")
        out.append((no, op, (rid, msg)))
    return out


def handle(args: argparse.Namespace) -> int:
    from google.protobuf import json_format

    from tandem.cli import UserError
    from tandem.engine.decide import decide
    from tandem.engine.decision import Decision, Explanation, Kind, Rejection
    from tandem.engine.loaders import TopologyFileError, load_topology
    from tandem.engine.state import State
    from tandem.pbconvert import decision_to_pb, request_from_pb

    try:
        topo = load_topology(args.topology)
    except TopologyFileError as exc:
        raise UserError(str(exc)) from None
    if args.generate is not None:
        if args.generate < 1:
            raise UserError("--generate must be at least 1")
        write_requests(topo, args.requests, args.generate, args.seed)
        print(f"wrote {args.generate} requests (seed {args.seed}) to {args.requests}")
        return 0
    reqs = read_requests(args.requests)
    state = State.empty(topo)
    counts: Counter[str] = Counter()
    admitted_mbps = 0.0
    sink: TextIO
    if args.out:
        try:
            sink = open(args.out, "w", encoding="utf-8")
        except OSError as exc:
            raise UserError(f"{args.out}: cannot write: {exc.strerror}") from None
    else:
        sink = sys.stdout
    report = sys.stdout if args.out else sys.stderr
    try:
        for _, op, (rid, msg) in reqs:
            if op == "release":
                if msg.workload_id in state.workloads:
                    dec = Decision(Kind.RELEASED, msg.workload_id, msg.tenant, rid,
                                   explanation=Explanation("released on request"))
                    counts["released"] += 1
                else:
                    dec = Decision(Kind.REJECTED, msg.workload_id, msg.tenant, rid,
                                   rejection=Rejection("invalid_request", "unknown workload"),
                                   explanation=Explanation("release of an unknown workload"))
                    counts["rejected: invalid_request"] += 1
            else:
                dec = decide(state, request_from_pb(msg, rid))
                if dec.admitted:
                    counts["admitted"] += 1
                    admitted_mbps += dec.request.bandwidth_mbps if dec.request else 0.0
                else:
                    assert dec.rejection is not None
                    counts[f"rejected: {dec.rejection.constraint}"] += 1
            state = state.apply(dec)
            sink.write(json_format.MessageToJson(decision_to_pb(dec), indent=None) + "\n")
    finally:
        if args.out:
            sink.close()
    _summary(report, counts, admitted_mbps, state)
    return 0


def _summary(out: TextIO, counts: Counter[str], mbps: float, state: Any) -> None:
    print(f"{'outcome':<34}{'count':>8}", file=out)
    for k in ["admitted", "released"] + sorted(k for k in counts if k.startswith("rejected")):
        if counts.get(k):
            print(f"{k:<34}{counts[k]:>8}", file=out)
    print(f"{'admitted bandwidth (Mbps)':<34}{mbps:>8.0f}", file=out)
    print(f"{'active workloads':<34}{len(state.workloads):>8}", file=out)
    util = state.utilisation()
    per_link: dict[str, tuple[float, str]] = {}
    for (lid, frm), u in util.items():
        if lid not in per_link or u > per_link[lid][0]:
            per_link[lid] = (u, frm)
    rows = sorted(per_link.items(), key=lambda kv: (-kv[1][0], kv[0]))
    print(f"\n{'link':<16}{'busiest direction from':<24}{'utilisation':>12}", file=out)
    for lid, (u, frm) in rows[:20]:
        print(f"{lid:<16}{frm:<24}{u:>11.1%}", file=out)
    if len(rows) > 20:
        print(f"... {len(rows) - 20} more links (mean utilisation "
              f"{sum(u for _, (u, _) in rows) / len(rows):.1%})", file=out)
