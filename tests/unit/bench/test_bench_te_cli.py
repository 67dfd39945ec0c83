"""`tandem bench` registration and `tandem bench te` end to end on a small topology."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tandem.cli import build_parser, main
from tandem.services import cli_bench

DATA = Path(__file__).resolve().parents[3] / "data"


def test_bench_te_is_registered() -> None:
    args = build_parser().parse_args(["bench", "te", "--topology", "x.graphml", "--seeds", "0-2"])
    assert args.func.__module__ == "tandem.bench.te"
    assert args.seeds == "0-2"


def test_missing_benchmark_module_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_bench, "BENCHMARKS", ("tandem.bench.te", "tandem.bench.nope_xyz"))
    build_parser()  # no error: the module that does not exist is simply not offered


def test_broken_benchmark_module_fails_loudly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "hb_broken_bench.py").write_text("import hb_dependency_that_is_missing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli_bench, "BENCHMARKS", ("hb_broken_bench",))
    with pytest.raises(ModuleNotFoundError):
        build_parser()
    sys.modules.pop("hb_broken_bench", None)


def test_bench_te_runs_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "te.json"
    rc = main(["bench", "te", "--topology", str(DATA / "b4/B4.json"), "--scales", "1,16",
               "--seeds", "0-1", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "B4" in text and "median" in text
    doc = json.loads(out.read_text())
    rows = doc["rows"]
    assert len(rows) == 4
    for row in rows:
        assert row["engine_feasible"] and row["engine_total"] <= row["lp_total"] * (1 + 1e-7)
        assert row["ratio"] >= 0.97
    assert doc["summary"]["B4"]["instances"] == 4
    assert doc["protocol"]["lp_method"] == "highs-ipm"


def test_bench_te_bad_file_is_a_user_error(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"nodes": [{"id": 1}], "links": [{"source": 1, "target": 2}]}')
    rc = main(["bench", "te", "--topology", str(bad), "--out", str(tmp_path / "o.json")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "links[0]" in err and "target" in err
    assert "Traceback" not in err
