"""The compute driver interface: what a site's compute control unit asks of its hypervisor.

One interface, several hypervisors (each site keeps its own: vSphere through pyvmomi, KVM
through libvirt, a simulated one), one contract suite run against every driver
(`tests/unit/compute/contract.py`). Every operation is idempotent and keyed by the VM's name
(`<workload>-<group>-<index>`, unique in the federation) plus the workload it belongs to,
recorded on the hypervisor (libvirt domain metadata, vSphere tags or custom attributes), so a
command repeated after a crash never makes a twin:

- creating a VM that exists for the same workload converges (powers it on if asked) and is
  otherwise a no-op (`Result.changed` False); the same name for another workload is refused
  with a `DriverError` naming the VM and both workloads;
- deleting a VM that does not exist is a no-op;
- powering a VM into the state it is in is a no-op.

What a hypervisor cannot do is declared, not hidden: `Driver.capabilities` says so, and the
contract suite checks the weaker promise instead of skipping.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass


class DriverError(Exception):
    """The hypervisor refused or failed an operation (the message names the VM, says what and
    why: it ends up in the FAILED acknowledgement an operator reads)."""


class HypervisorUnreachable(DriverError):
    """The hypervisor could not be reached at all (connection refused, reset, timed out):
    nothing was decided there, so the unit tries the command again for a while before it
    acknowledges a failure — a vCenter restarting, a libvirt daemon reloading, a WAN blip
    to the management network are outwaited, not turned into rollbacks."""


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
    # Where it runs, in the driver's own terms ("dc/cluster/pool", "host/storage-pool"):
    # the contract checks it is where the driver was configured to put VMs.
    location: str = ""


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


@dataclass(frozen=True)
class Capabilities:
    """What the hypervisor behind a driver can honestly promise (the contract suite reads it).

    capacity_accounting: free vCPU/memory fall by what a created VM takes and come back when
        it is deleted (False: the figures are the hypervisor's own and need not move).
    storage_accounting: the same for storage.
    enforces_capacity: a VM that does not fit is refused with a DriverError (False: the
        hypervisor overcommits and the engine's placement is the only guard).
    observed_addresses: the hypervisor reports guest addresses itself (guest agent, DHCP
        leases); VMs created without an address still show one. Without it a VM shows the
        address it was given, or none.
    """

    capacity_accounting: bool = True
    storage_accounting: bool = True
    enforces_capacity: bool = True
    observed_addresses: bool = False


class Driver(abc.ABC):
    """A site's hypervisor. Methods may block (the unit runs them in a thread)."""

    kind: str = ""
    # What this hypervisor can promise (a class default; a driver may set its own per
    # connection, e.g. libvirt's test driver reports addresses a real host may not).
    capabilities: Capabilities = Capabilities()

    @abc.abstractmethod
    def capacity(self) -> Capacity: ...

    @abc.abstractmethod
    def create(self, name: str, workload_id: str, vcpus: float, memory_gib: float,
               storage_gib: float, address: str = "", power_on: bool = True) -> Result:
        """Create a VM (powered on unless `power_on` is False, so that its network can be
        programmed first); a no-op when it exists for the same workload in the asked state.
        Creating an existing, powered-off VM with `power_on` True powers it on (a repeat after
        a crash between the two finishes the job); `power_on` False never powers one off."""

    @abc.abstractmethod
    def delete(self, name: str) -> Result:
        """Power off and delete a VM; a no-op when it does not exist."""

    @abc.abstractmethod
    def power(self, name: str, on: bool) -> Result:
        """Power a VM on or off; a no-op when it is already so; DriverError when absent."""

    @abc.abstractmethod
    def migrate_in(self, name: str, workload_id: str, vcpus: float, memory_gib: float,
                   storage_gib: float, address: str = "", power_on: bool = True) -> Result:
        """Receive a VM moving here (between sites of different hypervisors this is a
        re-creation; within one vCenter a relocation). Idempotent as `create`."""

    @abc.abstractmethod
    def get(self, name: str) -> VmInfo | None:
        """The VM of that name Tandem manages here, or None."""

    @abc.abstractmethod
    def list(self) -> list[VmInfo]:
        """The VMs Tandem manages here (those carrying a workload), sorted by name; VMs
        the site runs for others count against capacity but are not listed."""

    def close(self) -> None:
        """Release the connection; safe to call twice."""
        return None
