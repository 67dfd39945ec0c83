"""The compute driver interface: what a site's compute control unit asks of its hypervisor.

One interface, several hypervisors (each site keeps its own: vSphere through pyvmomi, KVM
through libvirt, a simulated one), one contract suite run against every driver
(`tests/unit/compute/contract.py`). Every operation is idempotent and keyed by the VM's name
(`<workload>-<group>-<index>`, unique in the federation), so a command repeated after a crash
never makes a twin: creating a VM that exists with the same workload is a no-op, deleting one
that does not exist is a no-op.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass


class DriverError(Exception):
    """The hypervisor refused or failed an operation (the message says what and why)."""


@dataclass(frozen=True)
class VmInfo:
    name: str
    workload_id: str
    vcpus: float
    memory_gib: float
    storage_gib: float
    powered_on: bool
    addresses: tuple[str, ...] = ()
    ref: str = ""  # the hypervisor's own reference (managed object id, domain UUID)


@dataclass(frozen=True)
class Capacity:
    """Free compute of the site (all clusters/hosts the unit drives)."""

    vcpus: float
    memory_gib: float
    storage_gib: float


@dataclass(frozen=True)
class Result:
    changed: bool  # False: already in the requested state (acknowledged NOOP)
    vm: VmInfo | None = None


class Driver(abc.ABC):
    """A site's hypervisor. Methods may block (the unit runs them in a thread)."""

    kind: str = ""

    @abc.abstractmethod
    def capacity(self) -> Capacity: ...

    @abc.abstractmethod
    def create(self, name: str, workload_id: str, vcpus: float, memory_gib: float,
               storage_gib: float, address: str = "") -> Result:
        """Create (and power on) a VM; a no-op when it exists for the same workload."""

    @abc.abstractmethod
    def delete(self, name: str) -> Result:
        """Power off and delete a VM; a no-op when it does not exist."""

    @abc.abstractmethod
    def power(self, name: str, on: bool) -> Result: ...

    @abc.abstractmethod
    def migrate_in(self, name: str, workload_id: str, vcpus: float, memory_gib: float,
                   storage_gib: float, address: str = "") -> Result:
        """Receive a VM moving here (between sites of different hypervisors this is a
        re-creation; within one vCenter a relocation)."""

    @abc.abstractmethod
    def get(self, name: str) -> VmInfo | None: ...

    @abc.abstractmethod
    def list(self) -> list[VmInfo]: ...

    def close(self) -> None:
        return None
