"""The compute driver contract: one suite every driver passes (sim, libvirt, vSphere).

API (stable; other test modules import it)
------------------------------------------
Subclass `DriverContract` in a module whose name starts with `test_` and give the class a
name starting with `Test`; provide three things:

    import contract                          # tests/unit/compute on sys.path, see below
    from contract import DriverContract, Observed

    class TestMyDriverContract(DriverContract):
        @pytest.fixture
        def driver(self) -> Iterator[Driver]:
            d = MyDriver(...)                # a working driver; the suite closes nothing
            yield d
            d.close()

        def observe(self, driver: Driver, name: str) -> Observed | None:
            '''The VM as the hypervisor shows it, read WITHOUT the driver's code (sim: its
            dict; libvirt: raw libvirt calls; vSphere: govc). None when absent.'''

        def expected_location(self, driver: Driver) -> str:
            '''Where this driver was configured to put VMs, in the terms of VmInfo.location
            and Observed.location (e.g. "DC0/DC0_C0/Resources", "host/pool").'''

Every test uses fresh, random VM and workload names (`ct<hex>-g0-<i>`), so a shared
hypervisor (one vcsim for the session) is fine as long as nothing else changes its capacity
while a test runs. VMs are 2 vCPU, 1 GiB memory, 2 GiB storage (`SPEC`); the site needs room
for 3 of them. Whatever a test created is deleted at its end (through the driver).

From tests/integration/compute (no package `__init__`s in tests/), import it with

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "compute"))
    from contract import DriverContract, Observed

What is checked (each a test method of DriverContract)
------------------------------------------------------
capacity: reported, non-negative, reduced by exactly the spec of a created VM and given back
    by its deletion (`capabilities.capacity_accounting` / `storage_accounting` False: only
    reported and non-negative); a VM that does not fit is refused with a DriverError naming
    it and nothing is created (`enforces_capacity` False: not asked).
create: the VM is where the driver puts VMs (observed location), with the spec (vCPU,
    memory), the workload recorded on the hypervisor, powered on; `power_on=False` leaves it
    off. Repeated: `changed` False, no twin (one VM of that name, capacity unchanged). After a
    create with power_on=False, a create with power_on=True powers it on (changed True).
    Same name for another workload: DriverError naming the VM and both workloads, the VM
    untouched. A spec with no vCPU or memory: DriverError naming the VM, nothing created.
power: off, off again (no-op), on, on again (no-op), observed each time; absent VM:
    DriverError naming it.
migrate_in: a VM arriving here is created with its spec, powered on; repeated: no-op;
    another workload's VM of that name: DriverError naming both.
delete: gone (observed, get, list), repeated: no-op (`changed` False), a powered-off VM too.
addresses: a VM given an address reports it (first); without one it reports the
    hypervisor's own (`observed_addresses`) or none.
get/list: get of an absent name is None; list holds the created VMs with their workloads,
    sorted by name, only VMs carrying a workload.
close: twice is harmless.

Capabilities the driver lacks (`Driver.capabilities`, services/compute/driver.py) turn a
check into its weaker promise, never into a silent skip.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tandem.services.compute.driver import Capacity, Driver, DriverError, Result, VmInfo

# vcpus, memory GiB, storage GiB of every VM the suite creates.
SPEC = (2.0, 1.0, 2.0)
ADDRESS = "10.77.0.5"


@dataclass(frozen=True)
class Observed:
    """A VM as the hypervisor itself shows it, read without the driver under test."""

    workload_id: str
    vcpus: float
    memory_gib: float
    powered_on: bool
    location: str


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-3)


class DriverContract:
    """The suite; see the module docstring for what a subclass provides."""

    # -- to override ---------------------------------------------------------------------
    @pytest.fixture
    def driver(self) -> Iterator[Driver]:
        raise NotImplementedError("a DriverContract subclass provides the `driver` fixture")
        yield  # pragma: no cover

    def observe(self, driver: Driver, name: str) -> Observed | None:
        raise NotImplementedError("a DriverContract subclass provides observe()")

    def expected_location(self, driver: Driver) -> str:
        raise NotImplementedError("a DriverContract subclass provides expected_location()")

    # -- helpers -------------------------------------------------------------------------
    @pytest.fixture
    def names(self, driver: Driver) -> Iterator[list[str]]:
        """Fresh VM names for this test (`ct<hex>-g0-<i>`, workload `ct<hex>`); whatever of
        them exists at the end is deleted through the driver."""
        stem = f"ct{uuid.uuid4().hex[:8]}"
        made = [f"{stem}-g0-{i}" for i in range(4)]
        yield made
        for n in made:
            try:
                driver.delete(n)
            except DriverError:
                pass

    @staticmethod
    def workload(name: str) -> str:
        return name.split("-")[0]

    def make(self, driver: Driver, name: str, address: str = "",
             power_on: bool = True, workload: str = "") -> Result:
        return driver.create(name, workload or self.workload(name), *SPEC, address=address,
                             power_on=power_on)

    def seen(self, driver: Driver, name: str) -> Observed:
        got = self.observe(driver, name)
        assert got is not None, f"the hypervisor shows no VM {name!r}"
        return got

    # -- capacity ------------------------------------------------------------------------
    def test_capacity_reported(self, driver: Driver) -> None:
        cap = driver.capacity()
        assert isinstance(cap, Capacity)
        assert cap.vcpus >= 0 and cap.memory_gib >= 0 and cap.storage_gib >= 0
        assert cap.vcpus >= 3 * SPEC[0] and cap.memory_gib >= 3 * SPEC[1], \
            f"the contract needs room for 3 VMs of {SPEC}, the site has {cap}"

    def test_capacity_reduced_by_created_vm_and_given_back(self, driver: Driver,
                                                          names: list[str]) -> None:
        caps = driver.capabilities
        before = driver.capacity()
        self.make(driver, names[0])
        during = driver.capacity()
        if caps.capacity_accounting:
            assert _close(before.vcpus - during.vcpus, SPEC[0]), (before, during)
            assert _close(before.memory_gib - during.memory_gib, SPEC[1]), (before, during)
        if caps.storage_accounting:
            assert _close(before.storage_gib - during.storage_gib, SPEC[2]), (before, during)
        self.make(driver, names[0])  # a repeat takes nothing more
        assert driver.capacity() == during
        driver.delete(names[0])
        after = driver.capacity()
        if caps.capacity_accounting:
            assert _close(after.vcpus, before.vcpus) and _close(after.memory_gib,
                                                                before.memory_gib)
        if caps.storage_accounting:
            assert _close(after.storage_gib, before.storage_gib), (before, after)
        assert min(during.vcpus, during.memory_gib, during.storage_gib) >= 0

    def test_vm_that_does_not_fit_is_refused(self, driver: Driver, names: list[str]) -> None:
        if not driver.capabilities.enforces_capacity:
            # The weaker promise: the driver says it overcommits; nothing to refuse.
            assert driver.capabilities.enforces_capacity is False
            return
        cap = driver.capacity()
        too_many = float(math.floor(cap.vcpus) + 8)
        with pytest.raises(DriverError) as err:
            driver.create(names[0], self.workload(names[0]), too_many, SPEC[1], SPEC[2])
        assert names[0] in str(err.value)
        assert driver.get(names[0]) is None and self.observe(driver, names[0]) is None
        with pytest.raises(DriverError) as err:
            driver.create(names[1], self.workload(names[1]), SPEC[0],
                          float(math.floor(cap.memory_gib) + 64), SPEC[2])
        assert names[1] in str(err.value)
        assert driver.get(names[1]) is None and self.observe(driver, names[1]) is None

    # -- create --------------------------------------------------------------------------
    def test_create_in_place_with_spec(self, driver: Driver, names: list[str]) -> None:
        name = names[0]
        res = self.make(driver, name)
        assert res.changed is True and res.vm is not None
        vm = res.vm
        assert (vm.name, vm.workload_id, vm.powered_on) == (name, self.workload(name), True)
        assert _close(vm.vcpus, SPEC[0]) and _close(vm.memory_gib, SPEC[1])
        assert _close(vm.storage_gib, SPEC[2])
        assert vm.ref, "the hypervisor's reference is reported"
        assert vm.location == self.expected_location(driver)
        obs = self.seen(driver, name)
        assert obs.workload_id == self.workload(name), "workload recorded on the hypervisor"
        assert _close(obs.vcpus, SPEC[0]) and _close(obs.memory_gib, SPEC[1])
        assert obs.powered_on is True
        assert obs.location == self.expected_location(driver)

    def test_create_powered_off_then_on(self, driver: Driver, names: list[str]) -> None:
        name = names[0]
        res = self.make(driver, name, power_on=False)
        assert res.changed and res.vm is not None and res.vm.powered_on is False
        assert self.seen(driver, name).powered_on is False
        again = self.make(driver, name, power_on=False)
        assert again.changed is False
        on = self.make(driver, name, power_on=True)  # a repeat finishes the job
        assert on.changed is True and on.vm is not None and on.vm.powered_on is True
        assert self.seen(driver, name).powered_on is True
        assert self.make(driver, name, power_on=False).changed is False  # never powers off
        assert self.seen(driver, name).powered_on is True

    def test_create_repeated_makes_no_twin(self, driver: Driver, names: list[str]) -> None:
        name = names[0]
        first = self.make(driver, name, ADDRESS)
        cap = driver.capacity()
        second = self.make(driver, name, ADDRESS)
        assert second.changed is False
        assert first.vm is not None and second.vm is not None
        assert second.vm.ref == first.vm.ref
        assert [v.name for v in driver.list()].count(name) == 1
        assert driver.capacity() == cap

    def test_same_name_other_workload_refused(self, driver: Driver, names: list[str]) -> None:
        name = names[0]
        self.make(driver, name)
        with pytest.raises(DriverError) as err:
            self.make(driver, name, workload="intruder")
        msg = str(err.value)
        assert name in msg and self.workload(name) in msg and "intruder" in msg, msg
        vm = driver.get(name)
        assert vm is not None and vm.workload_id == self.workload(name)
        assert self.seen(driver, name).workload_id == self.workload(name)

    def test_empty_spec_refused(self, driver: Driver, names: list[str]) -> None:
        for name, spec in ((names[0], (0.0, 1.0, 2.0)), (names[1], (2.0, 0.0, 2.0))):
            with pytest.raises(DriverError) as err:
                driver.create(name, self.workload(name), *spec)
            assert name in str(err.value)
            assert driver.get(name) is None and self.observe(driver, name) is None

    # -- power ---------------------------------------------------------------------------
    def test_power_idempotent(self, driver: Driver, names: list[str]) -> None:
        name = names[0]
        self.make(driver, name)
        off = driver.power(name, False)
        assert off.changed is True and off.vm is not None and off.vm.powered_on is False
        assert self.seen(driver, name).powered_on is False
        assert driver.power(name, False).changed is False
        on = driver.power(name, True)
        assert on.changed is True and on.vm is not None and on.vm.powered_on is True
        assert self.seen(driver, name).powered_on is True
        assert driver.power(name, True).changed is False
        got = driver.get(name)
        assert got is not None and got.powered_on is True

    def test_power_absent_vm_names_it(self, driver: Driver, names: list[str]) -> None:
        for on in (True, False):
            with pytest.raises(DriverError) as err:
                driver.power(names[0], on)
            assert names[0] in str(err.value)

    # -- migrate_in ----------------------------------------------------------------------
    def test_migrate_in(self, driver: Driver, names: list[str]) -> None:
        name = names[0]
        res = driver.migrate_in(name, self.workload(name), *SPEC, address=ADDRESS)
        assert res.changed is True and res.vm is not None and res.vm.powered_on is True
        assert ADDRESS in res.vm.addresses
        obs = self.seen(driver, name)
        assert obs.workload_id == self.workload(name) and obs.powered_on
        assert _close(obs.vcpus, SPEC[0]) and _close(obs.memory_gib, SPEC[1])
        assert obs.location == self.expected_location(driver)
        assert driver.migrate_in(name, self.workload(name), *SPEC, address=ADDRESS).changed \
            is False
        assert [v.name for v in driver.list()].count(name) == 1
        with pytest.raises(DriverError) as err:
            driver.migrate_in(name, "intruder", *SPEC)
        assert name in str(err.value) and "intruder" in str(err.value)

    # -- delete --------------------------------------------------------------------------
    def test_delete_idempotent(self, driver: Driver, names: list[str]) -> None:
        name = names[0]
        self.make(driver, name)
        res = driver.delete(name)
        assert res.changed is True
        assert self.observe(driver, name) is None
        assert driver.get(name) is None and name not in [v.name for v in driver.list()]
        again = driver.delete(name)
        assert again.changed is False
        assert driver.delete(names[1]).changed is False  # never existed

    def test_delete_powered_off_vm(self, driver: Driver, names: list[str]) -> None:
        name = names[0]
        self.make(driver, name, power_on=False)
        assert driver.delete(name).changed is True
        assert self.observe(driver, name) is None and driver.get(name) is None

    # -- addresses -----------------------------------------------------------------------
    def test_addresses(self, driver: Driver, names: list[str]) -> None:
        given = self.make(driver, names[0], ADDRESS).vm
        assert given is not None
        assert given.addresses[:1] == (ADDRESS,), given.addresses
        got = driver.get(names[0])
        assert got is not None and got.addresses[:1] == (ADDRESS,)
        bare = self.make(driver, names[1]).vm
        assert bare is not None
        if driver.capabilities.observed_addresses:
            assert bare.addresses, "the hypervisor reports guest addresses"
        else:
            assert bare.addresses == (), bare.addresses

    # -- get / list ----------------------------------------------------------------------
    def test_get_and_list(self, driver: Driver, names: list[str]) -> None:
        assert driver.get(names[0]) is None
        self.make(driver, names[1])
        self.make(driver, names[0], power_on=False)
        got = driver.get(names[0])
        assert isinstance(got, VmInfo)
        assert got.name == names[0] and got.workload_id == self.workload(names[0])
        assert got.powered_on is False
        listed = driver.list()
        assert [v.name for v in listed] == sorted(v.name for v in listed)
        mine = {v.name: v for v in listed if v.name in names}
        assert set(mine) == {names[0], names[1]}
        assert all(v.workload_id for v in listed), "only VMs carrying a workload are listed"
        assert mine[names[1]].powered_on is True

    # -- close ---------------------------------------------------------------------------
    def test_close_twice(self, driver: Driver) -> None:
        driver.capacity()
        driver.close()
        driver.close()
