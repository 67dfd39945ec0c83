"""The compute unit outwaits a hypervisor it cannot reach (for `retry_s`), then fails the
command naming how long it tried; a stop while it waits leaves the command unacknowledged."""

from __future__ import annotations

import asyncio

import pytest

from tandem.services.compute.driver import DriverError, HypervisorUnreachable, Result
from tandem.services.compute.sim import SimConfig, SimDriver
from tandem.services.compute.unit import ComputeUnit, _Stopping
from tandem.v1 import commands_pb2

C = commands_pb2.ComputeCommand


class Flaky(SimDriver):
    """Unreachable for the first `down` calls, then the simulated hypervisor."""

    def __init__(self, down: int) -> None:
        super().__init__(SimConfig())
        self.down, self.calls = down, 0

    def create(self, *a: object, **kw: object) -> Result:
        self.calls += 1
        if self.calls <= self.down:
            raise HypervisorUnreachable("vCenter https://vc/sdk is unreachable (refused)")
        return super().create(*a, **kw)  # type: ignore[arg-type]


def create(name: str = "w-g-0") -> C:
    return C(command_id="c1", site_id="ams", action=C.ACTION_CREATE,
             vm=commands_pb2.VmSpec(vm_name=name, workload_id="w", vcpus=1, memory_gib=1))


async def test_an_unreachable_hypervisor_is_outwaited() -> None:
    drv = Flaky(down=2)
    unit = ComputeUnit("ams", drv, "unused:9092", retry_s=10.0)
    res = await unit._apply_retrying(create())
    assert res.changed and drv.calls == 3
    assert res.vm is not None and res.vm.powered_on is False  # created off: powered on later


async def test_it_gives_up_after_retry_s_saying_so() -> None:
    drv = Flaky(down=10**6)
    unit = ComputeUnit("ams", drv, "unused:9092", retry_s=0.6)
    with pytest.raises(DriverError, match=r"unreachable .*tried for 1 s"):
        await unit._apply_retrying(create())
    assert 2 <= drv.calls < 10


async def test_a_refusal_is_not_retried() -> None:
    drv = SimDriver(SimConfig(fail=frozenset({"w-g-0"})))
    unit = ComputeUnit("ams", drv, "unused:9092", retry_s=10.0)
    with pytest.raises(DriverError) as err:
        await unit._apply_retrying(create())
    assert not isinstance(err.value, HypervisorUnreachable)


async def test_a_stop_while_waiting_leaves_the_command_for_the_next_start() -> None:
    drv = Flaky(down=10**6)
    unit = ComputeUnit("ams", drv, "unused:9092", retry_s=60.0)
    unit._stop.set()
    with pytest.raises(_Stopping):
        await asyncio.wait_for(unit._apply_retrying(create()), 5)


async def test_power_off_of_a_vm_already_gone_is_a_no_op() -> None:
    from tandem.services.compute.unit import apply

    off = C(command_id="u1", site_id="ams", action=C.ACTION_POWER_OFF,
            vm=commands_pb2.VmSpec(vm_name="gone-g-0", workload_id="gone"))
    assert apply(SimDriver(SimConfig()), off).changed is False
