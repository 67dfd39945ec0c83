"""`tandem check` on plans the engine produced (they must pass), on plans broken after the fact
(they must not), and the command line (files in tmp_path, one subprocess)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joint_fixtures import random_topology

from tandem.check import check_plan
from tandem.cli import main
from tandem.engine.decide import decide
from tandem.engine.decision import Decision, Explanation, Kind
from tandem.engine.loaders import load_topology
from tandem.engine.state import State
from tandem.engine.topogen import generate_topology
from tandem.engine.topology import Topology
from tandem.engine.workgen import generate
from tandem.engine.workload import Demand, Location, WorkloadRequest
from tandem.pbconvert import request_to_pb

REPO = Path(__file__).resolve().parents[3]
ABILENE = REPO / "data" / "zoo" / "Abilene.graphml"


def run_engine(topo: Topology, reqs: list[WorkloadRequest], release_every: int = 0
               ) -> list[Decision]:
    """What `tandem plan` does: decide in order, fold, sometimes release an admitted workload."""
    state, out = State.empty(topo), []
    for i, r in enumerate(reqs):
        d = decide(state, r)
        state = state.apply(d)
        out.append(d)
        if release_every and i % release_every == release_every - 1 and state.workloads:
            gone = sorted(state.workloads)[0]
            rel = Decision(Kind.RELEASED, gone, explanation=Explanation("released"))
            state = state.apply(rel)
            out.append(rel)
    return out


def with_locations(topo: Topology, reqs: list[WorkloadRequest], seed: int) -> list[WorkloadRequest]:
    """Add a user-location demand to some requests (workgen has none) and re-send a few."""
    rng = random.Random(seed)
    sites = list(topo.sites.values())
    out = []
    for r in reqs:
        if rng.random() < 0.4:
            s = rng.choice(sites)
            loc = Location(max(-90.0, min(90.0, s.latitude + rng.uniform(-2, 2))),
                           max(-180.0, min(180.0, s.longitude + rng.uniform(-2, 2))))
            r = replace(r, demands=r.demands + (Demand(
                "loc", r.groups[0].group_id, 20.0, to_location=loc,
                max_latency_ms=rng.choice((0.0, 30.0, 60.0))),))
        out.append(r)
        if rng.random() < 0.1:  # a change of an admitted workload: decided as a replacement
            out.append(replace(r, request_id=r.request_id + "-again",
                               groups=tuple(replace(g, count=g.count + 1) for g in r.groups)))
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(5, 40))
def test_engine_plans_on_random_federations_pass(seed: int, n: int) -> None:
    topo = random_topology(seed, n=6 + seed % 5)
    reqs = generate(topo, n, seed, transit_share=0.4, residency_share=0.5, diverse_share=0.3)
    decs = run_engine(topo, reqs, release_every=4)
    assert check_plan(topo, reqs, decs) == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000))
def test_a_plan_that_loses_a_path_or_grows_a_reservation_is_caught(seed: int) -> None:
    topo = random_topology(seed, n=8)
    reqs = generate(topo, 30, seed, diverse_share=0.0)
    decs = run_engine(topo, reqs)
    carrying = [i for i, d in enumerate(decs) if d.admitted and d.paths]
    if not carrying:
        return
    i = random.Random(seed).choice(carrying)
    lost = replace(decs[i], paths=decs[i].paths[1:])
    found = check_plan(topo, reqs, decs[:i] + [lost] + decs[i + 1:])
    assert ("demand", decs[i].workload_id) in {(v.rule, v.workload_id) for v in found}
    # a reservation blown up past the link's capacity is caught on that link
    r0 = decs[i].paths[0]
    cap = min(topo.links[lid].capacity_from(s) for lid, s in zip(r0.links, r0.sites))
    grown = replace(decs[i], paths=(replace(r0, bandwidth_mbps=cap + 1.0),) + decs[i].paths[1:])
    found = check_plan(topo, reqs, decs[:i] + [grown] + decs[i + 1:])
    assert ("bandwidth", decs[i].workload_id) in {(v.rule, v.workload_id) for v in found}


def test_engine_plans_on_a_generated_wan_with_unknown_countries_pass() -> None:
    topo = generate_topology(40, 11, unknown_countries=4)  # workgen walks all pairs: keep it small
    reqs = with_locations(topo, generate(topo, 80, 2, transit_share=0.5, residency_share=0.5,
                                         diverse_share=0.2), 2)
    decs = run_engine(topo, reqs, release_every=10)
    assert sum(d.admitted for d in decs) > 20
    assert check_plan(topo, reqs, decs) == []


# --------------------------------------------------------------------------------- CLI
def write_requests(path: Path, reqs: list[WorkloadRequest], release: str = "") -> Path:
    lines = [json.dumps({"requestId": r.request_id,
                         "place": json_format.MessageToDict(request_to_pb(r))}) for r in reqs]
    if release:
        lines.insert(len(lines) // 2, json.dumps({"requestId": "rel",
                                                  "release": {"workloadId": release}}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_tandem_plan_on_abilene_then_tandem_check_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topo = load_topology(ABILENE)
    reqs = with_locations(topo, generate(topo, 150, 7, diverse_share=0.2), 7)
    rf = write_requests(tmp_path / "r.jsonl", reqs, release=reqs[3].workload_id)
    plan = tmp_path / "d.jsonl"
    assert main(["plan", "--topology", str(ABILENE), "--requests", str(rf), "--out", str(plan)]) == 0
    kinds = [json.loads(x)["kind"] for x in plan.read_text().splitlines()]
    assert "DECISION_KIND_PLACED" in kinds and "DECISION_KIND_REJECTED" in kinds
    capsys.readouterr()
    assert main(["check", "--topology", str(ABILENE), "--requests", str(rf),
                 "--plan", str(plan)]) == 0
    assert "0 violations" in capsys.readouterr().out


SMALL_REQUESTS = [  # "a": an HA pair kept apart, so its demand must cross the WAN
    '{"workloadId": "a", "groups": [{"groupId": "g", "count": 1, "vcpus": 2, "memoryGib": 2},'
    ' {"groupId": "h", "count": 1}], "rules": {"antiAffinity": [{"groupIds": ["g", "h"]}]},'
    ' "demands": [{"demandId": "u", "fromGroup": "g", "toGroup": "h", "bandwidthMbps": 100}]}',
    '{"requestId": "r2", "place": {"workloadId": "b", "groups": [{"groupId": "g", "count": 1}],'
    ' "rules": {"vmJurisdictions": ["US"]}}}',
]


def small_plan(tmp_path: Path) -> tuple[Path, Path, list[dict[str, object]]]:
    rf = tmp_path / "r.jsonl"
    rf.write_text("\n".join(SMALL_REQUESTS) + "\n", encoding="utf-8")
    plan = tmp_path / "d.jsonl"
    assert main(["plan", "--topology", str(ABILENE), "--requests", str(rf), "--out", str(plan)]) == 0
    return rf, plan, [json.loads(x) for x in plan.read_text().splitlines()]


def test_cli_subprocess_reports_violations_with_plan_lines_and_exit_1(tmp_path: Path) -> None:
    rf, plan, decs = small_plan(tmp_path)
    cmd = [sys.executable, "-m", "tandem.cli", "check", "--topology", str(ABILENE),
           "--requests", str(rf), "--plan", str(plan)]
    ok = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert ok.returncode == 0 and "0 violations" in ok.stdout, ok.stderr
    path = decs[0]["paths"][0]  # type: ignore[index]
    path["bandwidthMbps"] = 1e9
    decs[1]["placements"][0]["siteId"] = "nowhere"  # type: ignore[index]
    plan.write_text("\n".join(json.dumps(d) for d in decs) + "\n\n", encoding="utf-8")
    bad = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    rows = [ln.split() for ln in bad.stdout.splitlines() if ln[:6].strip().isdigit()]
    assert {(r[0], r[1], r[2]) for r in rows} == {("1", "a", "bandwidth"), ("2", "b", "site")}
    assert "2 violation(s)" in bad.stdout and "Traceback" not in bad.stderr


@pytest.mark.parametrize(("mutate", "needle"), [
    (lambda d: d.update(kinds="x"), "kinds"),
    (lambda d: d.update(kind="DECISION_KIND_NOPE"), "kind"),
    (lambda d: d.pop("kind"), "'kind'"),
    (lambda d: d.pop("workloadId"), "'workloadId'"),
    (lambda d: d["paths"][0].update(bandwidthMbps="lots"), "bandwidthMbps"),
])
def test_cli_bad_plan_line_names_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mutate: object, needle: str
) -> None:
    rf, plan, decs = small_plan(tmp_path)
    mutate(decs[0])  # type: ignore[operator]
    plan.write_text("\n" + "\n".join(json.dumps(d) for d in decs) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["check", "--topology", str(ABILENE), "--requests", str(rf),
                 "--plan", str(plan)]) == 2
    err = capsys.readouterr().err
    assert f"{plan}: line 2" in err and needle in err and "Traceback" not in err


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_cli_plan_that_is_not_json_objects(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           text: str) -> None:
    rf, plan, _ = small_plan(tmp_path)
    plan.write_text(text + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["check", "--topology", str(ABILENE), "--requests", str(rf),
                 "--plan", str(plan)]) == 2
    assert f"{plan}: line 1" in capsys.readouterr().err


def test_cli_missing_files_are_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rf, plan, _ = small_plan(tmp_path)
    for args, name in (
        (["--topology", str(tmp_path / "no.graphml"), "--requests", str(rf), "--plan", str(plan)],
         "no.graphml"),
        (["--topology", str(ABILENE), "--requests", str(tmp_path / "no.jsonl"), "--plan",
          str(plan)], "no.jsonl"),
        (["--topology", str(ABILENE), "--requests", str(rf), "--plan", str(tmp_path / "p.jsonl")],
         "p.jsonl"),
    ):
        capsys.readouterr()
        assert main(["check", *args]) == 2
        err = capsys.readouterr().err
        assert name in err and "Traceback" not in err
