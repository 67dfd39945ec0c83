"""The KVM driver: a site's hypervisor through libvirt (libvirt-python).

A second, real hypervisor API beside vSphere, so that "each site its own hypervisor" holds and
the driver interface is proven not to be vSphere-shaped. One unit drives one libvirt host (a
URI: `qemu:///system` locally, `qemu+ssh://root@kvm1/system` remotely, `test:///path.xml` for
libvirt's built-in test driver, on which the contract suite runs).

How the interface maps onto libvirt:

- a VM is a persistent domain named after it, a thin disk `<name>.qcow2` in the configured
  pool (over `base_image`, the template, when set) and a NIC on the configured network;
- idempotency: the workload (and the given address) is in the domain's `<metadata>` under
  our own namespace, written by the `defineXML` that creates the domain, so no domain of ours
  exists without it. A domain without it is someone else's: never listed, changed or
  deleted, but counted against capacity when it runs;
- capacity: the host's CPUs and memory (`getInfo`) less every running domain and every domain
  of ours (a VM created powered off is about to be powered on: its room stays held); storage
  is the pool's available space less what our thin volumes may still grow into;
- addresses: the address from the command first (the reserved paths match it), then those the
  hypervisor reports (`interfaceAddresses` from DHCP leases, or the guest agent);
- power off is a guest shutdown, forced after `shutdown_timeout_s`;
- migrate_in is a re-creation here, the source deleting its copy (a unit drives one host:
  live migration between hosts is not used);
- a lost connection (libvirtd restarted, ssh dropped) is reopened on the next operation;
  remote URIs get libvirt keepalives, so a dead peer fails a call instead of hanging it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlparse

from tandem.services.compute import compat_libvirt_error_stderr, compat_libvirt_undefine_flags
from tandem.services.compute.driver import (Capabilities, Capacity, Driver, DriverError,
                                            HypervisorUnreachable, Result, VmInfo)
from tandem.services.compute.libvirt_xml import (GIB, KIB_PER_GIB, DomainFacts, domain_xml,
                                                 parse_domain, volume_xml)

try:
    import libvirt
except ImportError as _exc:  # the driver is optional; say what to install when asked for it
    libvirt = None
    _IMPORT_ERROR: ImportError | None = _exc
else:
    _IMPORT_ERROR = None

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class LibvirtConfig:
    uri: str = "qemu:///system"
    pool: str = "default"  # storage pool holding the VMs' disks
    network: str = "default"  # libvirt network the VMs' NIC joins
    domain_type: str = "kvm"
    arch: str = "x86_64"
    base_image: str = ""  # a qcow2 image new disks are backed by (empty: blank disks)
    vcpu_ratio: float = 1.0  # vCPU per host CPU the site sells (overcommit)
    reserved_memory_gib: float = 0.0  # kept for the host itself
    shutdown_timeout_s: float = 60.0
    address_source: str = "lease"  # lease | agent | none
    keepalive_s: int = 5  # remote URIs: a peer silent 3 intervals is dead


def _require_libvirt() -> Any:
    if libvirt is None:
        raise DriverError(f"the libvirt driver needs libvirt-python ({_IMPORT_ERROR}); "
                          "apt-get install libvirt-dev pkg-config && pip install libvirt-python")
    return libvirt


_event_loop_started = False


def _start_event_loop(lv: Any) -> None:
    """libvirt's keepalives need an event loop; one daemon thread runs the default one. Must
    be registered before the connection is opened."""
    global _event_loop_started
    if _event_loop_started:
        return
    lv.virEventRegisterDefaultImpl()

    def run() -> None:
        while True:
            lv.virEventRunDefaultImpl()

    threading.Thread(target=run, name="libvirt-events", daemon=True).start()
    _event_loop_started = True


class LibvirtDriver(Driver):
    kind = "libvirt"

    def __init__(self, config: LibvirtConfig | None = None) -> None:
        self.config = config or LibvirtConfig()
        self._lv = _require_libvirt()
        compat_libvirt_error_stderr.apply(self._lv)
        self._lock = threading.RLock()
        self._conn: Any = None
        self._remote = bool(urlparse(self.config.uri).hostname)
        conn = self.connection()  # a wrong URI, pool or network fails the unit's start
        self._pool(conn)
        try:
            conn.networkLookupByName(self.config.network)
        except self._lv.libvirtError as exc:
            raise DriverError(f"no network {self.config.network!r} on {self.config.uri}: "
                              f"{exc.get_error_message()}") from exc
        # The test driver makes up an address for every running NIC; a real host reports
        # one only when the guest took a DHCP lease or runs an agent: not a promise.
        self.capabilities = Capabilities(
            observed_addresses=conn.getType() == "TEST" and self.config.address_source != "none")
        self.location = f"{conn.getHostname()}/{self.config.pool}"

    # -- connection ----------------------------------------------------------------------
    def connection(self) -> Any:
        """The open `virConnect` (reopened when it was lost); for tools and tests that read
        the hypervisor directly."""
        with self._lock:
            if self._conn is not None:
                try:
                    if self._conn.isAlive():
                        return self._conn
                except self._lv.libvirtError:
                    pass
                log.warning("libvirt connection to %s lost; reconnecting", self.config.uri)
                self._conn = None
            if self._remote and self.config.keepalive_s > 0:
                _start_event_loop(self._lv)
            try:
                conn = self._lv.open(self.config.uri)
                if self._remote and self.config.keepalive_s > 0:
                    conn.setKeepAlive(self.config.keepalive_s, 3)
            except self._lv.libvirtError as exc:
                raise HypervisorUnreachable(f"cannot connect to libvirt at {self.config.uri}: "
                                  f"{exc.get_error_message()}") from exc
            self._conn = conn
            return conn

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except self._lv.libvirtError:
                pass

    def _do(self, what: str, fn: Callable[[Any], T]) -> T:
        """Run `fn(conn)` under the lock; a libvirt error becomes a DriverError saying
        `what` (which names the VM). A connection found dead is reopened and `fn` run again
        once: every operation here is idempotent."""
        with self._lock:
            for attempt in (1, 2):
                conn = self.connection()
                try:
                    return fn(conn)
                except DriverError as exc:  # ours (a pool gone, say): name the VM too
                    if what.startswith("VM ") and "VM " not in str(exc):
                        raise type(exc)(f"{what}: {exc}") from exc
                    raise
                except self._lv.libvirtError as exc:
                    alive = False
                    try:
                        alive = bool(conn.isAlive())
                    except self._lv.libvirtError:
                        pass
                    if attempt == 1 and not alive:
                        continue
                    raise DriverError(f"{what} on {self.config.uri}: "
                                      f"{exc.get_error_message()}") from exc
        raise AssertionError("unreachable")

    # -- reading -------------------------------------------------------------------------
    def _pool(self, conn: Any) -> Any:
        try:
            pool = conn.storagePoolLookupByName(self.config.pool)
        except self._lv.libvirtError as exc:
            raise DriverError(f"no storage pool {self.config.pool!r} on {self.config.uri}: "
                              f"{exc.get_error_message()}") from exc
        if not pool.isActive():
            raise DriverError(f"storage pool {self.config.pool!r} on {self.config.uri} is "
                              "not active (virsh pool-start)")
        return pool

    def _lookup(self, conn: Any, name: str) -> Any:
        try:
            return conn.lookupByName(name)
        except self._lv.libvirtError as exc:
            if exc.get_error_code() == self._lv.VIR_ERR_NO_DOMAIN:
                return None
            raise

    def _volume(self, pool: Any, name: str) -> Any:
        try:
            return pool.storageVolLookupByName(name)
        except self._lv.libvirtError as exc:
            if exc.get_error_code() == self._lv.VIR_ERR_NO_STORAGE_VOL:
                return None
            raise

    def _addresses(self, dom: Any, given: str) -> tuple[str, ...]:
        out = [given] if given else []
        source = {"lease": self._lv.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
                  "agent": self._lv.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT}.get(
                      self.config.address_source)
        if source is None or not dom.isActive():
            return tuple(out)
        try:
            ifaces = dom.interfaceAddresses(source) or {}
        except self._lv.libvirtError as exc:  # no agent, no lease: the given one stands
            log.debug("addresses of %s: %s", dom.name(), exc.get_error_message())
            return tuple(out)
        for iface in ifaces.values():
            for a in iface.get("addrs") or []:
                addr = a.get("addr", "")
                if addr and addr not in out and not addr.startswith(("127.", "::1", "fe80:")):
                    out.append(addr)
        return tuple(out)

    def _info(self, conn: Any, dom: Any, d: DomainFacts | None = None) -> VmInfo:
        d = d or parse_domain(dom.XMLDesc(0))
        storage = 0.0
        if d.pool and d.volume:
            try:
                vol = conn.storagePoolLookupByName(d.pool).storageVolLookupByName(d.volume)
                storage = vol.info()[1] / GIB
            except self._lv.libvirtError:
                pass
        state = dom.state()[0]
        running = state in (self._lv.VIR_DOMAIN_RUNNING, self._lv.VIR_DOMAIN_BLOCKED)
        return VmInfo(dom.name(), d.workload, float(d.vcpus), d.memory_kib / KIB_PER_GIB,
                      storage, running, self._addresses(dom, d.address), dom.UUIDString(),
                      f"{conn.getHostname()}/{d.pool}")

    def _ours(self, conn: Any, name: str) -> tuple[Any, DomainFacts] | None:
        """The domain of that name and what it says, or None; a domain that is not ours is
        an error naming it (nothing of Tandem's may touch it)."""
        dom = self._lookup(conn, name)
        if dom is None:
            return None
        d = parse_domain(dom.XMLDesc(0))
        if not d.workload:
            raise DriverError(f"VM {name!r}: a domain of that name exists on "
                              f"{self.config.uri} and is not Tandem's (no workload in its "
                              "metadata); left alone")
        return dom, d

    def _domains(self, conn: Any) -> list[tuple[Any, DomainFacts, bool]]:
        """Every domain of the host with its facts and whether it runs; one that vanished
        between the listing and the reading (deleted by someone else) is left out."""
        out = []
        for dom in conn.listAllDomains(0):
            try:
                out.append((dom, parse_domain(dom.XMLDesc(0)), bool(dom.isActive())))
            except self._lv.libvirtError as exc:
                if exc.get_error_code() != self._lv.VIR_ERR_NO_DOMAIN:
                    raise
        return out

    def _free(self, conn: Any) -> Capacity:
        info = conn.getInfo()  # [model, memory MiB, cpus, mhz, nodes, sockets, cores, threads]
        cpus = info[2] * self.config.vcpu_ratio
        mem = info[1] / 1024 - self.config.reserved_memory_gib
        pool = self._pool(conn)
        pool.refresh(0)
        storage = pool.info()[3] / GIB
        for dom, d, active in self._domains(conn):
            if not (d.workload or active):
                continue
            cpus -= d.vcpus
            mem -= d.memory_kib / KIB_PER_GIB
            if d.workload and d.pool == self.config.pool and d.volume:
                vol = self._volume(pool, d.volume)
                if vol is not None:  # what a thin volume may still grow into is promised
                    _, capacity, allocation = vol.info()
                    storage -= max(0, capacity - allocation) / GIB
        return Capacity(cpus, mem, storage)

    # -- the interface -------------------------------------------------------------------
    def capacity(self) -> Capacity:
        return self._do("capacity", self._free)

    def get(self, name: str) -> VmInfo | None:
        def fn(conn: Any) -> VmInfo | None:
            dom = self._lookup(conn, name)
            if dom is None:
                return None
            d = parse_domain(dom.XMLDesc(0))
            return self._info(conn, dom, d) if d.workload else None
        return self._do(f"VM {name!r}: get", fn)

    def list(self) -> list[VmInfo]:
        def fn(conn: Any) -> list[VmInfo]:
            out = [self._info(conn, dom, d) for dom, d, _ in self._domains(conn) if d.workload]
            return sorted(out, key=lambda v: v.name)
        return self._do("list", fn)

    def create(self, name: str, workload_id: str, vcpus: float, memory_gib: float,
               storage_gib: float, address: str = "", power_on: bool = True) -> Result:
        if vcpus <= 0 or memory_gib <= 0 or storage_gib < 0 or not name or "/" in name:
            raise DriverError(f"VM {name!r}: no VM of {vcpus} vCPU, {memory_gib} GiB memory, "
                              f"{storage_gib} GiB storage")

        def fn(conn: Any) -> Result:
            have = self._ours(conn, name)
            if have is not None:
                dom, d = have
                if d.workload != workload_id:
                    raise DriverError(f"VM {name!r} exists for workload {d.workload!r}, "
                                      f"not {workload_id!r}")
                if power_on and not dom.isActive():
                    self._start(dom, name)
                    return Result(True, self._info(conn, dom))
                return Result(False, self._info(conn, dom, d))
            want_cpus = math.ceil(vcpus)
            free = self._free(conn)
            if (want_cpus > free.vcpus + 1e-9 or memory_gib > free.memory_gib + 1e-9
                    or storage_gib > free.storage_gib + 1e-9):
                raise DriverError(
                    f"not enough capacity for VM {name!r} on {self.config.uri}: {want_cpus} "
                    f"vCPU / {memory_gib} GiB / {storage_gib} GiB asked, {free.vcpus:g} / "
                    f"{free.memory_gib:g} / {free.storage_gib:g} free")
            volume = self._ensure_volume(conn, name, storage_gib)
            dom = conn.defineXML(domain_xml(
                name=name, workload_id=workload_id, address=address, vcpus=want_cpus,
                memory_gib=memory_gib, domain_type=self.config.domain_type,
                arch=self.config.arch, pool=self.config.pool, volume=volume,
                network=self.config.network))
            if power_on:
                self._start(dom, name)
            return Result(True, self._info(conn, dom))
        return self._do(f"VM {name!r}: create", fn)

    def migrate_in(self, name: str, workload_id: str, vcpus: float, memory_gib: float,
                   storage_gib: float, address: str = "", power_on: bool = True) -> Result:
        """A move between sites is a re-creation here; the source deletes its copy."""
        return self.create(name, workload_id, vcpus, memory_gib, storage_gib, address,
                           power_on)

    def power(self, name: str, on: bool) -> Result:
        def fn(conn: Any) -> Result:
            have = self._ours(conn, name)
            if have is None:
                raise DriverError(f"no VM {name!r} to power {'on' if on else 'off'} on "
                                  f"{self.config.uri}")
            dom, d = have
            if bool(dom.isActive()) == on and dom.state()[0] != self._lv.VIR_DOMAIN_PAUSED:
                return Result(False, self._info(conn, dom, d))
            if on:
                self._start(dom, name)
            else:
                self._stop(dom)
            return Result(True, self._info(conn, dom, d))
        return self._do(f"VM {name!r}: power {'on' if on else 'off'}", fn)

    def delete(self, name: str) -> Result:
        def fn(conn: Any) -> Result:
            changed, before, volume = False, None, f"{name}.qcow2"
            have = self._ours(conn, name)
            if have is not None:
                dom, d = have
                before = self._info(conn, dom, d)
                volume = d.volume or volume
                if dom.isActive():
                    dom.destroy()  # the VM goes anyway: no point waiting for the guest
                compat_libvirt_undefine_flags.undefine(self._lv, dom)
                changed = True
            vol = self._volume(self._pool(conn), volume)
            if vol is not None:  # also the disk of a create that died before its define
                vol.delete(0)
                changed = True
            return Result(changed, before)
        return self._do(f"VM {name!r}: delete", fn)

    # -- mutating helpers ----------------------------------------------------------------
    def _start(self, dom: Any, name: str) -> None:
        if dom.state()[0] == self._lv.VIR_DOMAIN_PAUSED:
            dom.resume()
        elif not dom.isActive():
            dom.create()

    def _stop(self, dom: Any) -> None:
        """A guest shutdown (ACPI), forced when the guest ignores it past the timeout."""
        if dom.state()[0] == self._lv.VIR_DOMAIN_PAUSED:
            dom.destroy()
            return
        dom.shutdown()
        deadline = time.monotonic() + self.config.shutdown_timeout_s
        while dom.isActive() and time.monotonic() < deadline:
            time.sleep(0.2)
        if dom.isActive():
            log.warning("VM %s ignored shutdown for %.0f s; forcing it off", dom.name(),
                        self.config.shutdown_timeout_s)
            dom.destroy()

    def _ensure_volume(self, conn: Any, name: str, storage_gib: float) -> str:
        """The VM's disk: the one a previous, interrupted create left, or a new thin one."""
        pool = self._pool(conn)
        vol_name = f"{name}.qcow2"
        if self._volume(pool, vol_name) is None:
            pool.createXML(volume_xml(vol_name, storage_gib, self.config.base_image), 0)
        return vol_name
