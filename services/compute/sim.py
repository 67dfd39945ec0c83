"""A simulated hypervisor: in memory, deterministic, with a capacity and injectable faults.

For the demo and for tests of whole flows where no real hypervisor is the point; it passes
the same contract suite as the real drivers (tests/unit/compute/test_contract_sim.py), so a
flow tested on it behaves as on vSphere or libvirt. Faults are deterministic, never random, so
a failing test fails the same way twice: `fail` names VMs whose creation fails (as a
hypervisor refusing them would), `fail_every` fails every n-th mutating operation, `delay_s`
makes every mutating operation take that long (to measure where a flow's time goes).

Every VM counts against capacity whether powered on or not: a VM created powered off is
about to be powered on once its network is programmed, and its room must stay held.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

from tandem.services.compute.driver import (Capabilities, Capacity, DriverError, Driver,
                                            Result, VmInfo)


@dataclass
class SimConfig:
    vcpus: float = 512.0
    memory_gib: float = 2048.0
    storage_gib: float = 100_000.0
    delay_s: float = 0.0
    fail: frozenset[str] = frozenset()
    fail_every: int = 0
    location: str = "sim"  # reported as VmInfo.location


@dataclass
class SimDriver(Driver):
    config: SimConfig = field(default_factory=SimConfig)
    vms: dict[str, VmInfo] = field(default_factory=dict)
    ops: int = 0
    kind: str = "sim"
    capabilities = Capabilities(capacity_accounting=True, storage_accounting=True,
                                enforces_capacity=True, observed_addresses=False)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._serial = 0

    def _op(self, name: str) -> None:
        """One mutating operation: the configured delay, then maybe the configured fault."""
        if self.config.delay_s:
            time.sleep(self.config.delay_s)
        self.ops += 1
        if self.config.fail_every and self.ops % self.config.fail_every == 0:
            raise DriverError(f"simulated fault on operation {self.ops} ({name!r})")

    def _free(self) -> Capacity:
        used = list(self.vms.values())
        return Capacity(self.config.vcpus - sum(v.vcpus for v in used),
                        self.config.memory_gib - sum(v.memory_gib for v in used),
                        self.config.storage_gib - sum(v.storage_gib for v in used))

    def capacity(self) -> Capacity:
        with self._lock:
            return self._free()

    def create(self, name: str, workload_id: str, vcpus: float, memory_gib: float,
               storage_gib: float, address: str = "", power_on: bool = True) -> Result:
        with self._lock:
            have = self.vms.get(name)
            if have is not None:
                if have.workload_id != workload_id:
                    raise DriverError(f"VM {name!r} exists for workload {have.workload_id!r}, "
                                      f"not {workload_id!r}")
                if power_on and not have.powered_on:
                    self._op(name)
                    self.vms[name] = replace(have, powered_on=True)
                    return Result(True, self.vms[name])
                return Result(False, have)
            if vcpus <= 0 or memory_gib <= 0 or storage_gib < 0:
                raise DriverError(f"VM {name!r}: no VM of {vcpus} vCPU, {memory_gib} GiB "
                                  f"memory, {storage_gib} GiB storage")
            if name in self.config.fail:
                raise DriverError(f"simulated refusal to create {name!r}")
            self._op(name)
            free = self._free()
            if (vcpus > free.vcpus + 1e-9 or memory_gib > free.memory_gib + 1e-9
                    or storage_gib > free.storage_gib + 1e-9):
                raise DriverError(f"not enough capacity for {name!r}: {vcpus} vCPU / "
                                  f"{memory_gib} GiB / {storage_gib} GiB asked, {free.vcpus} / "
                                  f"{free.memory_gib} / {free.storage_gib} free")
            self._serial += 1
            vm = VmInfo(name, workload_id, vcpus, memory_gib, storage_gib, power_on,
                        (address,) if address else (), f"sim-{self._serial}",
                        self.config.location)
            self.vms[name] = vm
            return Result(True, vm)

    def delete(self, name: str) -> Result:
        with self._lock:
            if name not in self.vms:
                return Result(False)
            self._op(name)
            return Result(True, self.vms.pop(name))

    def power(self, name: str, on: bool) -> Result:
        with self._lock:
            vm = self.vms.get(name)
            if vm is None:
                raise DriverError(f"no VM {name!r} to power {'on' if on else 'off'}")
            if vm.powered_on == on:
                return Result(False, vm)
            self._op(name)
            self.vms[name] = replace(vm, powered_on=on)
            return Result(True, self.vms[name])

    def migrate_in(self, name: str, workload_id: str, vcpus: float, memory_gib: float,
                   storage_gib: float, address: str = "", power_on: bool = True) -> Result:
        """Between sites a move is a re-creation here (the source deletes its copy)."""
        return self.create(name, workload_id, vcpus, memory_gib, storage_gib, address,
                           power_on)

    def get(self, name: str) -> VmInfo | None:
        with self._lock:
            return self.vms.get(name)

    def list(self) -> list[VmInfo]:
        with self._lock:
            return sorted(self.vms.values(), key=lambda v: v.name)
