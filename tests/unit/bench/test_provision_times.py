"""`tandem bench provision`'s arithmetic (bench/provision_times.py): a workload's time cut into
who spent it, the step ends and driver shares the cut rests on, and the summaries."""

from __future__ import annotations

import math

import pytest

from tandem.bench import provision_times as PT


def _create_then_power() -> PT.Timeline:
    # order at 1000; decision record at 1004; create sent 1010 to ams (2 VMs, 30 + 40 ms in the
    # driver), acked 1050 and 1080; power-on sent 1090, acked 1100 / 1105 (5 + 5 ms);
    # ACTIVE status record at 1110, seen by the client at 1118.
    return PT.timeline(1000, [
        PT.Mark("decider", 1004, PT.DECIDER),
        PT.Step("create VMs", (PT.Cmd(1010, 1050, 30, "ams"), PT.Cmd(1010, 1080, 40, "ams"))),
        PT.Step("power VMs on", (PT.Cmd(1090, 1100, 5, "ams"), PT.Cmd(1091, 1105, 5, "ams"))),
        PT.Mark("executor: → ACTIVE status", 1110)], 1118)


def test_segments_cut_the_whole_time_and_name_who_spent_it() -> None:
    t = _create_then_power()
    got = {s.label: s.ms for s in t.segments}
    assert got == {
        "decider": 4, "create VMs: executor": 6, "create VMs: driver": 70,
        "create VMs: kafka+unit queue": 0,  # 1010 → 1080 is 70 ms, all of it in the driver
        "power VMs on: executor": 10, "power VMs on: driver": 10,
        "power VMs on: kafka+unit queue": 5, "executor: → ACTIVE status": 5,
        "status seen by the client": 8}
    assert t.total() == 118
    assert t.by_category() == {PT.DECIDER: 4, PT.EXECUTOR: 21, PT.DRIVER: 80, PT.KAFKA: 5,
                               PT.CLIENT: 8}


def test_sites_apply_in_parallel_and_one_unit_in_series() -> None:
    step = PT.Step("create VMs", (PT.Cmd(0, 50, 30, "ams"), PT.Cmd(0, 60, 25, "ams"),
                                  PT.Cmd(0, 45, 40, "fra")))
    assert step.driver_ms() == 55  # ams: 30 + 25 one after the other; fra's 40 alongside
    assert step.end_ms() == 60


def test_a_refused_command_ends_the_step_where_the_executor_fails_it() -> None:
    step = PT.Step("create VMs", (PT.Cmd(0, 20, 10, "ams"), PT.Cmd(0, 30, 2, "ams", failed=True),
                                  PT.Cmd(0, 90, 50, "fra")))
    assert step.end_ms() == 30
    assert step.driver_ms() == 12  # fra's 50 ms ended after the failure: not on the path


def test_driver_time_is_capped_by_the_span_it_lies_in() -> None:
    # ms-resolution record times can make an ack look sooner than the driver time it reports
    t = PT.timeline(0, [PT.Step("s", (PT.Cmd(10, 12, 5.4, "ams"),))], 20)
    got = {s.label: s.ms for s in t.segments}
    assert got["s: driver"] == 2 and got["s: kafka+unit queue"] == 0 and t.total() == 20


def test_summaries() -> None:
    a, b = _create_then_power(), PT.timeline(0, [PT.Mark("decider", 10, PT.DECIDER)], 30)
    med = PT.medians([a, b])
    assert list(med)[:2] == ["decider", "create VMs: executor"]
    assert med["decider"] in (4, 10) and med["status seen by the client"] in (8, 20)
    sh = PT.shares([a, b])
    assert sum(sh.values()) == pytest.approx(1.0)
    assert sh[PT.DECIDER] == pytest.approx(14 / 148)
    s = PT.stats([float(x) for x in range(1, 101)])
    assert (s["n"], s["p50"], s["p99"], s["max"]) == (100, 51, 99, 100)
    empty = PT.stats([])
    assert empty["n"] == 0 and math.isnan(empty["p99"])


def test_report_prints_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    def load(n: int, measure: str) -> dict[str, object]:
        return {"workloads": n, "done": n, "outcomes": {}, "sites": {"ams": n},
                "ms": {measure: PT.stats([12.5, 40.25])},
                "segments_p50_ms": PT.medians([_create_then_power()]),
                "shares": PT.shares([_create_then_power()])}
    res = {"single": load(1, "order → ACTIVE seen"), "concurrent": load(100, "order → ACTIVE "
           "seen"), "rollback": load(3, "order → ROLLED_BACK seen") | {"fault": "f"}}
    PT.report({"drivers": {"sim": res}, "note": "n", "load_average_1m_start_end": [1, 2]})
    out = capsys.readouterr().out
    assert "order → ROLLED_BACK seen" in out and "40.2" in out and "create VMs: driver" in out
