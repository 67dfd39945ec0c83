"""The vSphere driver: a site's VMs in one vCenter cluster, through pyvmomi 9.

Placement is configuration (`VsphereConfig`: datacenter, cluster, resource pool, VM folder,
datastore, optional network and template), never a guess; `VsphereConfig.from_env` reads it
from `TANDEM_VSPHERE_*` (docs/COMPUTE.md). Idempotence is keyed by VM name plus workload:
the workload is written into the VM's ExtraConfig (`tandem.workload`) by the same task that
creates it (`vsphere_inventory`), so a repeated command finds the VM and converges instead
of making a twin; vCenter's own refusal of a second VM of that name in the folder
(`DuplicateName`) closes the race between two creators.

Capacity is the cluster's usable hosts (connected, not in maintenance) times the configured
overcommit, less what every VM on them is configured with, and the cluster's datastores'
provisioned free space: the engine places against these figures, and `create` refuses a VM
that does not fit (vSphere itself would overcommit silently).

Sessions, timeouts, re-login, reconnection and task waiting: `vsphere_session`.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pyVmomi import vim as _vim

from tandem.services.compute.compat_govmomi_4046 import ensure_clone_config
from tandem.services.compute.driver import (Capabilities, Capacity, Driver, DriverError,
                                            Result, VmInfo)
from tandem.services.compute.vsphere_inventory import (ADDRESS_KEY, VM_PROPS, WORKLOAD_KEY,
                                                       Placement, disks_gib, extra, resolve,
                                                       vm_info)
from tandem.services.compute.vsphere_session import Endpoint, Session, TaskFailed

vim: Any = _vim  # pyvmomi's dynamic types are untyped for mypy

T = TypeVar("T")
GIB = 2**30


@dataclass(frozen=True)
class VsphereConfig:
    url: str  # https://vcenter.example.org/sdk
    user: str
    password: str
    ca_file: str = ""
    insecure: bool = False
    timeout_s: float = 30.0
    task_timeout_s: float = 300.0
    datacenter: str = ""  # inventory path; "" = the only one
    cluster: str = ""  # name in the datacenter's host folder; "" = the only one
    resource_pool: str = ""  # path under the cluster's root pool; "" = the root pool
    folder: str = ""  # path under the datacenter's vm folder (created); "" = the vm folder
    datastore: str = ""  # "" = the cluster's accessible datastore with most free space
    network: str = ""  # port group of one vmxnet3 NIC; "" = no NIC
    template: str = ""  # VM or template (path under the vm folder) to clone; "" = blank VM
    guest_id: str = "otherLinux64Guest"
    vcpu_overcommit: float = 1.0
    memory_overcommit: float = 1.0
    enforce_capacity: bool = True
    extra_config: tuple[tuple[str, str], ...] = ()  # more ExtraConfig for every created VM

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None,
                 prefix: str = "TANDEM_VSPHERE_") -> VsphereConfig:
        """TANDEM_VSPHERE_URL, _USER, _PASSWORD (required), _CA_FILE, _INSECURE (1/true),
        _TIMEOUT_S, _TASK_TIMEOUT_S, _DATACENTER, _CLUSTER, _RESOURCE_POOL, _FOLDER,
        _DATASTORE, _NETWORK, _TEMPLATE, _GUEST_ID, _VCPU_OVERCOMMIT, _MEMORY_OVERCOMMIT,
        _ENFORCE_CAPACITY (1/0)."""
        e = os.environ if env is None else env

        def get(key: str, default: str = "") -> str:
            return e.get(prefix + key, default)

        missing = [k for k in ("URL", "USER", "PASSWORD") if not get(k)]
        if missing:
            raise DriverError("vSphere driver: set " + ", ".join(prefix + k for k in missing))
        truthy = ("1", "true", "yes", "on")
        return cls(get("URL"), get("USER"), get("PASSWORD"), get("CA_FILE"),
                   get("INSECURE").lower() in truthy, float(get("TIMEOUT_S", "30")),
                   float(get("TASK_TIMEOUT_S", "300")), get("DATACENTER"), get("CLUSTER"),
                   get("RESOURCE_POOL"), get("FOLDER"), get("DATASTORE"), get("NETWORK"),
                   get("TEMPLATE"), get("GUEST_ID", "otherLinux64Guest"),
                   float(get("VCPU_OVERCOMMIT", "1")), float(get("MEMORY_OVERCOMMIT", "1")),
                   get("ENFORCE_CAPACITY", "1").lower() in truthy)

    def endpoint(self) -> Endpoint:
        return Endpoint(self.url, self.user, self.password, self.ca_file, self.insecure,
                        self.timeout_s, self.task_timeout_s)


class VsphereDriver(Driver):
    kind = "vsphere"
    # Guest addresses need VMware Tools in the guest: not promised.
    capabilities = Capabilities(observed_addresses=False)

    def __init__(self, config: VsphereConfig) -> None:
        self.config = config
        self.session = Session(config.endpoint())
        self._lock = threading.RLock()  # one operation at a time: check-then-act stays true

    # ----------------------------------------------------------------------- plumbing
    def _run(self, what: str, op: Callable[[Any, Placement], T]) -> T:
        def bound(content: Any) -> T:
            return op(content, resolve(self.session, content, self.config))

        with self._lock:
            return self.session.run(what, bound)

    def _wait(self, content: Any, task: Any, what: str) -> Any:
        return self.session.wait_task(content, task, what)

    def _find(self, content: Any, where: Placement, name: str) -> tuple[Any, dict[str, Any]] | None:
        """The VM of that name in this unit's scope (its folder, its cluster's pools)."""
        for vm, props in Session.retrieve(content, where.folder, vim.VirtualMachine,
                                          ["name", "resourcePool"]):
            pool = props.get("resourcePool")
            if props.get("name") == name and pool is not None and pool._moId in where.pools:
                return vm, self._props(content, vm)
        return None

    @staticmethod
    def _props(content: Any, vm: Any) -> dict[str, Any]:
        got = Session.properties(content, [vm], vim.VirtualMachine, VM_PROPS)
        return got[0][1] if got else {}

    def _info(self, content: Any, vm: Any) -> VmInfo:
        return vm_info(self.session, vm, self._props(content, vm))

    @staticmethod
    def _check_owner(name: str, props: dict[str, Any], workload_id: str) -> None:
        have = extra(props, WORKLOAD_KEY)
        if have != workload_id:
            raise DriverError(f"VM {name!r} exists for workload {have or '(none: not Tandem)'!r}, "
                              f"not {workload_id!r}: refused")

    def _power(self, content: Any, vm: Any, name: str, on: bool) -> None:
        task = vm.PowerOnVM_Task() if on else vm.PowerOffVM_Task()
        self._wait(content, task, f"power-{'on' if on else 'off'} of VM {name!r}")

    # ----------------------------------------------------------------------- capacity
    def capacity(self) -> Capacity:
        return self._run("reading capacity", self._capacity)

    def _capacity(self, content: Any, where: Placement) -> Capacity:
        hosts = Session.properties(content, list(where.cluster.host), vim.HostSystem, [
            "summary.hardware.numCpuThreads", "summary.hardware.memorySize",
            "runtime.inMaintenanceMode", "runtime.connectionState", "vm"])
        vcpus = mem = 0.0
        vms: list[Any] = []
        for _, h in hosts:
            vms.extend(h.get("vm") or [])
            if h.get("runtime.connectionState") == "connected" and not h.get(
                    "runtime.inMaintenanceMode"):
                vcpus += float(h.get("summary.hardware.numCpuThreads") or 0)
                mem += float(h.get("summary.hardware.memorySize") or 0) / GIB
        vcpus *= self.config.vcpu_overcommit
        mem *= self.config.memory_overcommit
        for _, v in Session.properties(content, vms, vim.VirtualMachine, [
                "config.hardware.numCPU", "config.hardware.memoryMB", "config.template"]):
            if not v.get("config.template"):
                vcpus -= float(v.get("config.hardware.numCPU") or 0)
                mem -= float(v.get("config.hardware.memoryMB") or 0) / 1024
        storage = 0.0
        for ds, d in Session.properties(content, list(where.cluster.datastore), vim.Datastore, [
                "summary.capacity", "summary.freeSpace", "summary.uncommitted",
                "summary.accessible", "vm"]):
            if not d.get("summary.accessible"):
                continue
            provisioned = 0.0  # what the VMs' disks on this datastore may grow to
            for _, v in Session.properties(content, list(d.get("vm") or []), vim.VirtualMachine,
                                           ["config.hardware.device"]):
                provisioned += sum(
                    (dev.capacityInBytes or (dev.capacityInKB or 0) * 1024) / GIB
                    for dev in v.get("config.hardware.device") or []
                    if isinstance(dev, vim.vm.device.VirtualDisk)
                    and getattr(dev.backing, "datastore", None) is not None
                    and dev.backing.datastore._moId == ds._moId)
            free = (float(d.get("summary.freeSpace") or 0)
                    - float(d.get("summary.uncommitted") or 0)) / GIB
            storage += max(0.0, min(free, float(d.get("summary.capacity") or 0) / GIB
                                    - provisioned))
        return Capacity(max(0.0, vcpus), max(0.0, mem), storage)

    # ----------------------------------------------------------------------- create
    def create(self, name: str, workload_id: str, vcpus: float, memory_gib: float,
               storage_gib: float, address: str = "", power_on: bool = True) -> Result:
        if vcpus <= 0 or memory_gib <= 0 or storage_gib < 0:
            raise DriverError(f"VM {name!r}: a VM needs vCPU and memory (asked {vcpus} vCPU, "
                              f"{memory_gib} GiB, {storage_gib} GiB storage)")
        return self._run(f"creating VM {name!r}", lambda c, w: self._create(
            c, w, name, workload_id, vcpus, memory_gib, storage_gib, address, power_on))

    def _converge(self, content: Any, vm: Any, props: dict[str, Any], name: str,
                  workload_id: str, power_on: bool) -> Result:
        """An existing VM of ours: power it on when asked (a repeat finishing the job)."""
        self._check_owner(name, props, workload_id)
        if power_on and props.get("runtime.powerState") != "poweredOn":
            self._power(content, vm, name, True)
            return Result(True, self._info(content, vm))
        return Result(False, vm_info(self.session, vm, props))

    def _create(self, content: Any, where: Placement, name: str, workload_id: str,
                vcpus: float, memory_gib: float, storage_gib: float, address: str,
                power_on: bool) -> Result:
        found = self._find(content, where, name)
        if found is not None:
            return self._converge(content, *found, name, workload_id, power_on)
        if self.config.enforce_capacity:
            cap = self._capacity(content, where)
            if vcpus > cap.vcpus + 1e-9 or memory_gib > cap.memory_gib + 1e-9 or (
                    storage_gib > cap.storage_gib + 1e-9):
                raise DriverError(
                    f"VM {name!r} does not fit in cluster {where.cluster.name!r}: asked "
                    f"{vcpus} vCPU / {memory_gib} GiB / {storage_gib} GiB, free "
                    f"{cap.vcpus:g} / {cap.memory_gib:g} / {cap.storage_gib:g}")
        config = self._config_spec(where, name, workload_id, vcpus, memory_gib, storage_gib,
                                   address)
        what = f"creation of VM {name!r} (workload {workload_id!r})"
        try:
            if where.template is not None:
                spec = vim.vm.CloneSpec(
                    location=vim.vm.RelocateSpec(pool=where.pool, datastore=where.datastore),
                    powerOn=False, template=False, config=config)
                vm = self._wait(content, where.template.CloneVM_Task(
                    folder=where.folder, name=name, spec=spec), what)
                ensure_clone_config(self.session, content, vm, config,
                                    f"configuration of cloned VM {name!r}")
            else:
                vm = self._wait(content, where.folder.CreateVM_Task(
                    config=config, pool=where.pool), what)
        except TaskFailed as exc:
            if not isinstance(exc.fault, vim.fault.DuplicateName):
                raise
            again = self._find(content, where, name)  # made concurrently: converge on it
            if again is None:
                raise
            return self._converge(content, *again, name, workload_id, power_on)
        if power_on:
            self._power(content, vm, name, True)
        return Result(True, self._info(content, vm))

    def _config_spec(self, where: Placement, name: str, workload_id: str, vcpus: float,
                     memory_gib: float, storage_gib: float, address: str) -> Any:
        opts = [vim.option.OptionValue(key=WORKLOAD_KEY, value=workload_id)]
        if address:
            opts.append(vim.option.OptionValue(key=ADDRESS_KEY, value=address))
        opts += [vim.option.OptionValue(key=k, value=v) for k, v in self.config.extra_config]
        spec = vim.vm.ConfigSpec(
            name=name, numCPUs=int(math.ceil(vcpus)), memoryMB=int(math.ceil(memory_gib * 1024)),
            annotation=f"Tandem workload {workload_id}", extraConfig=opts)
        if where.template is not None:
            return spec  # disks and NICs come from the template
        spec.guestId = self.config.guest_id
        spec.files = vim.vm.FileInfo(vmPathName=f"[{where.datastore.name}]")
        changes: list[Any] = []
        if storage_gib > 0:
            add = vim.vm.device.VirtualDeviceSpec.Operation.add
            ctl = vim.vm.device.ParaVirtualSCSIController(
                key=1000, busNumber=0, sharedBus=vim.vm.device.VirtualSCSIController.Sharing.noSharing)
            disk = vim.vm.device.VirtualDisk(
                key=2000, controllerKey=1000, unitNumber=0,
                capacityInKB=int(math.ceil(storage_gib * 2**20)),
                backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                    diskMode="persistent", thinProvisioned=True,
                    fileName=f"[{where.datastore.name}]", datastore=where.datastore))
            changes += [vim.vm.device.VirtualDeviceSpec(operation=add, device=ctl),
                        vim.vm.device.VirtualDeviceSpec(
                            operation=add, device=disk,
                            fileOperation=vim.vm.device.VirtualDeviceSpec.FileOperation.create)]
        if where.network is not None:
            nic = vim.vm.device.VirtualVmxnet3(
                key=4000, backing=vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(
                    deviceName=where.network.name, network=where.network),
                connectable=vim.vm.device.VirtualDevice.ConnectInfo(
                    startConnected=True, allowGuestControl=True, connected=False))
            changes.append(vim.vm.device.VirtualDeviceSpec(
                operation=vim.vm.device.VirtualDeviceSpec.Operation.add, device=nic))
        spec.deviceChange = changes
        return spec

    # ----------------------------------------------------------------------- the rest
    def delete(self, name: str) -> Result:
        def op(content: Any, where: Placement) -> Result:
            found = self._find(content, where, name)
            if found is None:
                return Result(False)
            vm, props = found
            info = vm_info(self.session, vm, props)
            if props.get("runtime.powerState") == "poweredOn":
                self._power(content, vm, name, False)
            self._wait(content, vm.Destroy_Task(), f"deletion of VM {name!r}")
            return Result(True, info)
        return self._run(f"deleting VM {name!r}", op)

    def power(self, name: str, on: bool) -> Result:
        def op(content: Any, where: Placement) -> Result:
            found = self._find(content, where, name)
            if found is None:
                raise DriverError(f"no VM {name!r} in {where.location}: cannot power it "
                                  f"{'on' if on else 'off'}")
            vm, props = found
            if (props.get("runtime.powerState") == "poweredOn") == on:
                return Result(False, vm_info(self.session, vm, props))
            self._power(content, vm, name, on)
            return Result(True, self._info(content, vm))
        return self._run(f"powering VM {name!r} {'on' if on else 'off'}", op)

    def migrate_in(self, name: str, workload_id: str, vcpus: float, memory_gib: float,
                   storage_gib: float, address: str = "", power_on: bool = True) -> Result:
        """Here already: converge. Elsewhere in this vCenter (another cluster, pool or
        folder): relocate it here, running. Nowhere: re-create it here."""
        def op(content: Any, where: Placement) -> Result:
            if self._find(content, where, name) is None:
                for vm, props in Session.retrieve(content, content.rootFolder,
                                                  vim.VirtualMachine, ["name"]):
                    if props.get("name") != name:
                        continue
                    full = self._props(content, vm)
                    if full.get("config.template") or not extra(full, WORKLOAD_KEY):
                        continue
                    self._check_owner(name, full, workload_id)
                    host = self._pick_host(content, where)
                    spec = vim.vm.RelocateSpec(pool=where.pool, datastore=where.datastore,
                                               folder=where.folder, host=host)
                    self._wait(content, vm.RelocateVM_Task(spec=spec),
                               f"relocation of VM {name!r} to {where.location}")
                    if power_on and full.get("runtime.powerState") != "poweredOn":
                        self._power(content, vm, name, True)
                    return Result(True, self._info(content, vm))
            return self._create(content, where, name, workload_id, vcpus, memory_gib,
                                storage_gib, address, power_on)
        return self._run(f"receiving VM {name!r}", op)

    @staticmethod
    def _pick_host(content: Any, where: Placement) -> Any:
        usable = [(h, p) for h, p in Session.properties(
            content, list(where.cluster.host), vim.HostSystem,
            ["runtime.inMaintenanceMode", "runtime.connectionState", "vm"])
            if p.get("runtime.connectionState") == "connected"
            and not p.get("runtime.inMaintenanceMode")]
        if not usable:
            raise DriverError(f"cluster {where.cluster.name!r} has no usable host")
        return min(usable, key=lambda hp: len(hp[1].get("vm") or []))[0]

    def get(self, name: str) -> VmInfo | None:
        def op(content: Any, where: Placement) -> VmInfo | None:
            found = self._find(content, where, name)
            return None if found is None else vm_info(self.session, *found)
        return self._run(f"reading VM {name!r}", op)

    def list(self) -> list[VmInfo]:
        def op(content: Any, where: Placement) -> list[VmInfo]:
            out = [vm_info(self.session, vm, p) for vm, p in Session.retrieve(
                content, where.folder, vim.VirtualMachine, VM_PROPS)
                if p.get("resourcePool") is not None and p["resourcePool"]._moId in where.pools
                and extra(p, WORKLOAD_KEY) and not p.get("config.template")]
            return sorted(out, key=lambda v: v.name)
        return self._run("listing VMs", op)

    def close(self) -> None:
        self.session.close()


__all__ = ["VsphereConfig", "VsphereDriver", "disks_gib"]
