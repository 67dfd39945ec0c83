"""Protobuf conversion and the `tandem plan` command (files in tmp_path, no services)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import json_format
from joint_fixtures import five_sites, random_topology

from tandem.cli import main
from tandem.engine.decide import decide
from tandem.engine.state import State
from tandem.engine.workgen import generate
from tandem.pbconvert import (
    decision_to_pb,
    kind_from_pb,
    request_from_pb,
    request_to_pb,
    topology_from_pb,
    topology_to_pb,
)
from tandem.v1 import decision_pb2

ABILENE = Path(__file__).resolve().parents[3] / "data" / "zoo" / "Abilene.graphml"


def test_request_round_trip() -> None:
    for r in generate(random_topology(3), 20, 3):
        back = request_from_pb(request_to_pb(r), r.request_id)
        assert back == r


def test_decision_to_pb_carries_everything() -> None:
    st = State.empty(five_sites())
    r = generate(five_sites(), 1, 5)[0]
    d = decide(st, r)
    pb = decision_to_pb(d)
    assert kind_from_pb(pb.kind) is d.kind
    assert [(p.group_id, p.site_id, p.count) for p in pb.placements] == list(d.placements)
    assert [tuple(p.link_ids) for p in pb.paths] == [p.links for p in d.paths]
    assert len(pb.explanation.alternatives) == len(d.explanation.alternatives)
    again = json_format.Parse(json_format.MessageToJson(pb), decision_pb2.Decision())
    assert again == pb


def test_topology_round_trip() -> None:
    topo = five_sites()
    sites, links = topology_to_pb(topo)
    assert topology_from_pb(sites, links, topo.name) == topo


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_plan_writes_one_decision_per_line_and_a_summary(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    topo_reqs = _write(tmp_path / "r.jsonl", [
        '{"workloadId": "a", "groups": [{"groupId": "g", "count": 1, "vcpus": 2, "memoryGib": 2}],'
        ' "demands": [{"demandId": "u", "fromGroup": "g", "toSite": "n1", "bandwidthMbps": 100}]}',
        "",
        '{"requestId": "r2", "place": {"workloadId": "b", "groups": [{"groupId": "g", "count": 1}]}}',
        '{"requestId": "r3", "release": {"workloadId": "a"}}',
        '{"workloadId": "c", "groups": [{"groupId": "g", "count": 1, "hypervisor": "xen"}]}',
    ])
    out = tmp_path / "d.jsonl"
    assert main(["plan", "--topology", str(ABILENE), "--requests", str(topo_reqs),
                 "--out", str(out)]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["DECISION_KIND_PLACED", "DECISION_KIND_PLACED",
                                          "DECISION_KIND_RELEASED", "DECISION_KIND_REJECTED"]
    assert lines[1]["requestId"] == "r2"
    assert lines[3]["rejection"]["constraint"] == "hypervisor"
    text = capsys.readouterr().out
    assert "admitted" in text and "rejected: hypervisor" in text and "utilisation" in text


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ('{"workloadId": "a", "groups": [{"groupId": "g", "cnt": 1}]}', "cnt"),
        ('{"workloadId": "a", "groups": [{"groupId": "g", "count": "x"}]}', "count"),
        ('{"workloadId": "a", ', "not JSON"),
        ('[1, 2]', "JSON object"),
        ('{"groups": [{"groupId": "g"}]}', "workloadId"),
    ],
)
def test_plan_bad_request_file_names_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, needle: str
) -> None:
    good = '{"workloadId": "ok", "groups": [{"groupId": "g", "count": 1}]}'
    f = _write(tmp_path / "bad.jsonl", [good, line])
    assert main(["plan", "--topology", str(ABILENE), "--requests", str(f)]) == 2
    err = capsys.readouterr().err
    assert f"{f}: line 2" in err and needle in err and "Traceback" not in err


def test_plan_bad_topology_file_is_a_user_error(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    f = _write(tmp_path / "r.jsonl", ['{"workloadId": "a", "groups": [{"groupId": "g"}]}'])
    assert main(["plan", "--topology", str(tmp_path / "none.graphml"), "--requests", str(f)]) == 2
    assert "none.graphml" in capsys.readouterr().err


def test_plan_output_is_identical_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    """Replay determinism: no decision may depend on set/dict order under hash randomisation."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    reqs = root / "docs" / "examples" / "abilene-requests.jsonl"
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / f"d{seed}.jsonl"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-m", "tandem.cli", "plan", "--topology", str(ABILENE),
                        "--requests", str(reqs), "--out", str(out)], check=True, env=env,
                       capture_output=True)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] and outs[0].count(b"\n") == 41
