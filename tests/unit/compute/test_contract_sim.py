"""The driver contract on the simulated driver: pure, in-process, no service needed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from contract import DriverContract, Observed
from tandem.services.compute.driver import Driver
from tandem.services.compute.sim import SimConfig, SimDriver


class TestSimContract(DriverContract):
    @pytest.fixture
    def driver(self) -> Iterator[Driver]:
        d = SimDriver(SimConfig(vcpus=16, memory_gib=32, storage_gib=100, location="sim-ams"))
        yield d
        d.close()

    def observe(self, driver: Driver, name: str) -> Observed | None:
        # The simulator's own state, read directly rather than through get().
        assert isinstance(driver, SimDriver)
        vm = driver.vms.get(name)
        if vm is None:
            return None
        return Observed(vm.workload_id, vm.vcpus, vm.memory_gib, vm.powered_on, vm.location)

    def expected_location(self, driver: Driver) -> str:
        return "sim-ams"
