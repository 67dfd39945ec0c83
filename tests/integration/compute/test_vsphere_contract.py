"""The driver contract (tests/unit/compute/contract.py) on the vSphere driver against the
vCenter simulator, every observation made with govc rather than the driver's own code."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from contract import DriverContract, Observed
from tandem.services.compute.driver import Driver
from tandem.services.compute.vsphere import VsphereDriver
from vcsim_util import Vcsim, observe

pytestmark = pytest.mark.integration


class TestVsphereContract(DriverContract):
    @pytest.fixture
    def driver(self, vcsim: Vcsim, govc_ready: object) -> Iterator[Driver]:
        d = VsphereDriver(vcsim.config())
        yield d
        d.close()

    def observe(self, driver: Driver, name: str) -> Observed | None:
        assert isinstance(driver, VsphereDriver)
        return observe(driver.config, name)

    def expected_location(self, driver: Driver) -> str:
        return "DC0/DC0_C0/Resources"
