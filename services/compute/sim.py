"""A simulated hypervisor: in memory, deterministic, with a capacity and injectable faults.

For the demo and for tests of whole flows where no real hypervisor is the point; it passes
the same contract suite as the real drivers. Faults are deterministic: `fail` names VMs whose
creation fails (as a hypervisor refusing them would), `fail_every` fails every n-th mutating
operation, `delay_s` makes every operation take that long.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

from tandem.services.compute.driver import Capacity, DriverError, Driver, Result, VmInfo


@dataclass
class SimConfig:
    vcpus: float = 512.0
    memory_gib: float = 2048.0
    storage_gib: float = 100_000.0
    delay_s: float = 0.0
    fail: frozenset[str] = frozenset()
    fail_every: int = 0


@dataclass
class SimDriver(Driver):
    config: SimConfig = field(default_factory=SimConfig)
    vms: dict[str, VmInfo] = field(default_factory=dict)
    ops: int = 0
    kind: str = "sim"

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def _op(self, name: str) -> None:
        if self.config.delay_s:
            time.sleep(self.config.delay_s)
        self.ops += 1
        if self.config.fail_every and self.ops % self.config.fail_every == 0:
            raise DriverError(f"simulated fault on operation {self.ops} ({name})")

    def capacity(self) -> Capacity:
        with self._lock:
            used = [v for v in self.vms.values()]
            return Capacity(self.config.vcpus - sum(v.vcpus for v in used),
                            self.config.memory_gib - sum(v.memory_gib for v in used),
                            self.config.storage_gib - sum(v.storage_gib for v in used))

    def create(self, name: str, workload_id: str, vcpus: float, memory_gib: float,
               storage_gib: float, address: str = "") -> Result:
        with self._lock:
            have = self.vms.get(name)
            if have is not None:
                if have.workload_id != workload_id:
                    raise DriverError(f"VM {name!r} exists for workload {have.workload_id!r}")
                return Result(False, have)
            if name in self.config.fail:
                raise DriverError(f"simulated refusal to create {name!r}")
            self._op(name)
            free_vcpus = self.config.vcpus - sum(v.vcpus for v in self.vms.values())
            free_mem = self.config.memory_gib - sum(v.memory_gib for v in self.vms.values())
            if vcpus > free_vcpus + 1e-9 or memory_gib > free_mem + 1e-9:
                raise DriverError(f"not enough capacity for {name!r}: {vcpus} vCPU / "
                                  f"{memory_gib} GiB asked, {free_vcpus} / {free_mem} free")
            vm = VmInfo(name, workload_id, vcpus, memory_gib, storage_gib, True,
                        (address,) if address else (), f"sim-{len(self.vms) + self.ops}")
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
                raise DriverError(f"no VM {name!r}")
            if vm.powered_on == on:
                return Result(False, vm)
            self._op(name)
            self.vms[name] = replace(vm, powered_on=on)
            return Result(True, self.vms[name])

    def migrate_in(self, name: str, workload_id: str, vcpus: float, memory_gib: float,
                   storage_gib: float, address: str = "") -> Result:
        return self.create(name, workload_id, vcpus, memory_gib, storage_gib, address)

    def get(self, name: str) -> VmInfo | None:
        with self._lock:
            return self.vms.get(name)

    def list(self) -> list[VmInfo]:
        with self._lock:
            return sorted(self.vms.values(), key=lambda v: v.name)
