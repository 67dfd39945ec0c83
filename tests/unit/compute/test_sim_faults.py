"""The simulated driver's own promises beyond the contract: deterministic faults and delays."""

from __future__ import annotations

import time

import pytest

from tandem.services.compute.driver import DriverError
from tandem.services.compute.sim import SimConfig, SimDriver


def test_named_vm_refused_and_nothing_made() -> None:
    d = SimDriver(SimConfig(fail=frozenset({"w1-g0-1"})))
    d.create("w1-g0-0", "w1", 1, 1, 1)
    with pytest.raises(DriverError, match="w1-g0-1"):
        d.create("w1-g0-1", "w1", 1, 1, 1)
    assert [v.name for v in d.list()] == ["w1-g0-0"]


def test_every_nth_operation_fails_the_same_way_twice() -> None:
    def run() -> list[str]:
        d = SimDriver(SimConfig(fail_every=3))
        out = []
        for i in range(6):
            try:
                d.create(f"w1-g0-{i}", "w1", 1, 1, 1)
                out.append("ok")
            except DriverError as exc:
                assert f"w1-g0-{i}" in str(exc)
                out.append("fault")
        return out

    assert run() == run() == ["ok", "ok", "fault", "ok", "ok", "fault"]


def test_fault_leaves_no_vm_and_retry_succeeds() -> None:
    d = SimDriver(SimConfig(fail_every=2))
    d.create("w1-g0-0", "w1", 1, 1, 1)
    with pytest.raises(DriverError):
        d.create("w1-g0-1", "w1", 1, 1, 1)
    assert d.get("w1-g0-1") is None
    assert d.create("w1-g0-1", "w1", 1, 1, 1).changed is True


def test_noops_take_no_delay_and_count_no_operation() -> None:
    d = SimDriver(SimConfig(delay_s=0.05))
    started = time.perf_counter()
    d.create("w1-g0-0", "w1", 1, 1, 1)
    assert time.perf_counter() - started >= 0.05
    ops = d.ops
    started = time.perf_counter()
    assert d.create("w1-g0-0", "w1", 1, 1, 1).changed is False
    assert d.delete("w1-g0-9").changed is False
    assert time.perf_counter() - started < 0.05 and d.ops == ops


def test_refs_unique_after_deletes() -> None:
    d = SimDriver()
    a = d.create("w1-g0-0", "w1", 1, 1, 1).vm
    d.delete("w1-g0-0")
    b = d.create("w1-g0-1", "w1", 1, 1, 1).vm
    c = d.create("w1-g0-2", "w1", 1, 1, 1).vm
    assert a and b and c and len({a.ref, b.ref, c.ref}) == 3
