"""Where the vSphere driver puts VMs, resolved from names to managed objects, and how a VM
reads back as a `VmInfo`.

The placement is named, never guessed: datacenter, cluster, resource pool (a path under the
cluster's root pool "Resources"), VM folder (a path under the datacenter's `vm` folder,
created when missing), datastore and network. Names are resolved once per session (a new
session, after a vCenter restart, resolves again: managed object ids may have changed).

A VM belongs to Tandem when its ExtraConfig carries `tandem.workload`: it is written in the
same `CreateVM_Task` that makes the VM, so there is no moment when a VM exists unlabelled
(a custom attribute or tag would be a second call, and a crash between the two would leave
a VM that a repeated command cannot recognise and would twin).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyVmomi import vim as _vim

from tandem.services.compute.driver import DriverError, VmInfo
from tandem.services.compute.vsphere_session import Session

vim: Any = _vim  # pyvmomi's dynamic types are untyped for mypy

WORKLOAD_KEY = "tandem.workload"
ADDRESS_KEY = "tandem.address"
VM_PROPS = ("name", "config.hardware.numCPU", "config.hardware.memoryMB",
            "config.hardware.device", "config.extraConfig", "config.template",
            "runtime.powerState", "guest.net", "guest.ipAddress", "resourcePool")


@dataclass(frozen=True)
class Placement:
    """The resolved placement (managed objects of one session)."""

    datacenter: Any
    cluster: Any
    pool: Any
    folder: Any
    datastore: Any
    network: Any | None
    template: Any | None
    pools: frozenset[str]  # moIds of every resource pool of the cluster (the unit's scope)
    location: str  # "<datacenter>/<cluster>/<pool path>", as VmInfo.location


def _find(content: Any, path: str, kind: type, what: str) -> Any:
    obj = content.searchIndex.FindByInventoryPath(path)
    if obj is None or not isinstance(obj, kind):
        raise DriverError(f"vSphere {what} {path!r} not found (inventory path)")
    return obj


def _only(objs: list[Any], kind: type, what: str) -> Any:
    found: list[Any] = [o for o in objs if isinstance(o, kind)]
    if len(found) != 1:
        names = ", ".join(sorted(o.name for o in found)) or "none"
        raise DriverError(f"vSphere {what} not configured and not unique ({names}): name one")
    return found[0]


def resolve(session: Session, content: Any, cfg: Any) -> Placement:
    """The placement of `cfg` (a VsphereConfig), cached for the session."""
    cached = session.cache.get("placement")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    dc = (_find(content, cfg.datacenter, vim.Datacenter, "datacenter") if cfg.datacenter
          else _only(list(content.rootFolder.childEntity), vim.Datacenter, "datacenter"))
    dc_path = cfg.datacenter or dc.name
    cluster = (_find(content, f"{dc_path}/host/{cfg.cluster}", vim.ClusterComputeResource,
                     "cluster") if cfg.cluster
               else _only(list(dc.hostFolder.childEntity), vim.ClusterComputeResource, "cluster"))
    pool, pool_path = cluster.resourcePool, [cluster.resourcePool.name]
    for part in [p for p in cfg.resource_pool.split("/") if p and p != pool.name]:
        nxt = [c for c in pool.resourcePool if c.name == part]
        if not nxt:
            raise DriverError(f"vSphere resource pool {part!r} not found under "
                              f"{'/'.join(pool_path)} of cluster {cluster.name!r}")
        pool = nxt[0]
        pool_path.append(part)
    folder = dc.vmFolder
    for part in [p for p in cfg.folder.split("/") if p]:
        nxt = [c for c in folder.childEntity if isinstance(c, vim.Folder) and c.name == part]
        if nxt:
            folder = nxt[0]
        else:
            try:
                folder = folder.CreateFolder(part)
            except vim.fault.DuplicateName:  # made concurrently by another unit
                folder = [c for c in folder.childEntity if c.name == part][0]
    stores = list(cluster.datastore)
    if cfg.datastore:
        named = [d for d in stores if d.name == cfg.datastore]
        if not named:
            raise DriverError(f"vSphere datastore {cfg.datastore!r} not found in cluster "
                              f"{cluster.name!r} (has {', '.join(d.name for d in stores)})")
        datastore = named[0]
    else:
        up = [d for d in stores if d.summary.accessible]
        if not up:
            raise DriverError(f"cluster {cluster.name!r} has no accessible datastore")
        datastore = max(up, key=lambda d: d.summary.freeSpace)
    network = None
    if cfg.network:
        nets = [n for n in dc.network if n.name == cfg.network]
        if not nets:
            raise DriverError(f"vSphere network {cfg.network!r} not found in {dc.name!r}")
        network = nets[0]
    template = None
    if cfg.template:
        template = content.searchIndex.FindByInventoryPath(f"{dc_path}/vm/{cfg.template}")
        if not isinstance(template, vim.VirtualMachine):
            raise DriverError(f"vSphere template {cfg.template!r} not found in {dc.name}/vm")
    pools = frozenset(p._moId for p, _ in Session.retrieve(content, cluster, vim.ResourcePool,
                                                            ["name"]))
    placement = Placement(dc, cluster, pool, folder, datastore, network, template,
                          pools | {cluster.resourcePool._moId},
                          f"{dc.name}/{cluster.name}/{'/'.join(pool_path)}")
    session.cache["placement"] = placement
    return placement


def pool_location(session: Session, pool: Any) -> str:
    """"<datacenter>/<cluster>/<pool path>" of a resource pool (cached by moId)."""
    key = f"loc:{pool._moId}"
    if key in session.cache:
        return str(session.cache[key])
    names: list[str] = []
    obj = pool
    while obj is not None and not isinstance(obj, vim.Datacenter):
        if not isinstance(obj, vim.Folder):  # the datacenter's host folder and user folders
            names.append(obj.name)
        obj = obj.parent
    if obj is not None:
        names.append(obj.name)
    loc = "/".join(reversed(names))
    session.cache[key] = loc
    return loc


def extra(props: dict[str, Any], key: str) -> str:
    for opt in props.get("config.extraConfig") or []:
        if opt.key == key:
            return str(opt.value)
    return ""


def disks_gib(devices: Any) -> float:
    total = 0
    for dev in devices or []:
        if isinstance(dev, vim.vm.device.VirtualDisk):
            total += dev.capacityInBytes or (dev.capacityInKB or 0) * 1024
    return total / 2**30


def vm_info(session: Session, vm: Any, props: dict[str, Any]) -> VmInfo:
    given = extra(props, ADDRESS_KEY)
    seen: list[str] = [given] if given else []
    for nic in props.get("guest.net") or []:
        seen.extend(a for a in (nic.ipAddress or []) if a not in seen)
    ip = props.get("guest.ipAddress")
    if ip and ip not in seen:
        seen.append(ip)
    pool = props.get("resourcePool")
    return VmInfo(
        name=props["name"], workload_id=extra(props, WORKLOAD_KEY),
        vcpus=float(props.get("config.hardware.numCPU") or 0),
        memory_gib=float(props.get("config.hardware.memoryMB") or 0) / 1024,
        storage_gib=disks_gib(props.get("config.hardware.device")),
        powered_on=props.get("runtime.powerState") == "poweredOn",
        addresses=tuple(seen), ref=vm._moId,
        location=pool_location(session, pool) if pool is not None else "")
