"""The vSphere driver where pyvmomi users get hurt: repeated commands, dropped sessions, a
vCenter killed and restarted, a task failing midway, a vCenter that never answers, moves
within one vCenter, clones from a template. govc checks the outcome from outside."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from itest_wait import until_sync
from pyVim.connect import Disconnect, SmartConnect

from tandem.services.compute.driver import DriverError
from tandem.services.compute.vsphere import VsphereDriver
from vcsim_util import Vcsim, govc, observe, vm_paths

pytestmark = pytest.mark.integration
SPEC = (2.0, 1.0, 2.0)


@pytest.fixture
def name() -> str:
    return f"vf{uuid.uuid4().hex[:8]}-g0-0"


def workload(vm: str) -> str:
    return vm.split("-")[0]


@pytest.fixture
def driver(vcsim: Vcsim, govc_ready: Path, name: str) -> Iterator[VsphereDriver]:
    d = VsphereDriver(vcsim.config())
    yield d
    try:
        d.delete(name)
    finally:
        d.close()


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Until the process is reaped or a zombie."""
    def gone() -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True

    until_sync(gone, f"pid {pid} to end", timeout, every=0.02)


def test_repeated_create_makes_no_twin(driver: VsphereDriver, name: str) -> None:
    first = driver.create(name, workload(name), *SPEC, address="10.9.0.7")
    assert first.changed and first.vm is not None
    again = driver.create(name, workload(name), *SPEC, address="10.9.0.7")
    assert again.changed is False and again.vm is not None and again.vm.ref == first.vm.ref
    # A unit restarted after a crash: a new driver, a new session, the same command.
    fresh = VsphereDriver(driver.config)
    try:
        third = fresh.create(name, workload(name), *SPEC, address="10.9.0.7")
        assert third.changed is False and third.vm is not None and third.vm.ref == first.vm.ref
    finally:
        fresh.close()
    assert len(vm_paths(driver.config, name)) == 1, "govc finds exactly one VM of that name"
    seen = observe(driver.config, name)
    assert seen is not None and seen.workload_id == workload(name) and seen.powered_on
    info = govc(driver.config, "vm.info", "-e", vm_paths(driver.config, name)[0])
    assert "tandem.address" in info and "10.9.0.7" in info


def test_relogin_after_session_dropped(driver: VsphereDriver, vcsim: Vcsim, name: str) -> None:
    driver.capacity()
    key = driver.session.session_key()
    assert driver.session.logins == 1
    cfg = driver.config
    host, port = cfg.url.split("//")[1].split("/")[0].split(":")
    import ssl
    admin = SmartConnect(host=host, port=int(port), user=cfg.user, pwd=cfg.password,
                         sslContext=ssl.create_default_context(cafile=cfg.ca_file),
                         httpConnectionTimeout=10)
    try:
        admin.content.sessionManager.TerminateSession([key])
        assert key not in [s.key for s in admin.content.sessionManager.sessionList]
    finally:
        Disconnect(admin)
    res = driver.create(name, workload(name), *SPEC)  # NotAuthenticated -> login -> done
    assert res.changed and driver.session.logins == 2
    assert driver.session.session_key() != key
    assert len(vm_paths(cfg, name)) == 1


def test_vcsim_killed_then_back(private_vcsim: Vcsim, govc_ready: Path, name: str) -> None:
    d = VsphereDriver(private_vcsim.config())
    try:
        assert d.create(name, workload(name), *SPEC).changed
        os.kill(private_vcsim.pid, signal.SIGKILL)
        wait_gone(private_vcsim.pid)
        started = time.monotonic()
        for call in (d.capacity, lambda: d.get(name),
                     lambda: d.create(name, workload(name), *SPEC)):
            with pytest.raises(DriverError, match="unreachable"):
                call()
        assert time.monotonic() - started < 3 * d.config.timeout_s, "errors come fast"
        private_vcsim.up()  # same port, a new process, a new certificate, no sessions
        assert d.capacity().vcpus > 0
        assert d.session.logins == 2
        # A restarted simulator has forgotten its VMs: the repeated command re-creates it.
        assert d.get(name) is None
        assert d.create(name, workload(name), *SPEC).changed
        assert len(vm_paths(d.config, name)) == 1
    finally:
        d.close()


def test_task_failing_midway(private_vcsim: Vcsim, govc_ready: Path, name: str) -> None:
    """The VM is created, then its power-on task fails (its host in maintenance mode): a
    DriverError names the VM, the step and the fault; the VM stays, single and off; the
    repeated command, once the host is back, finishes the job."""
    d = VsphereDriver(private_vcsim.config())
    cfg = d.config
    hosts = [p for p in govc(cfg, "find", "/", "-type", "h").split() if "DC0_C0_H" in p]
    try:
        assert d.create(name, workload(name), *SPEC, power_on=False).changed
        for h in hosts:
            govc(cfg, "host.maintenance.enter", h)
        with pytest.raises(DriverError) as err:
            d.create(name, workload(name), *SPEC)
        msg = str(err.value)
        assert name in msg and "power-on" in msg and "InvalidState" in msg, msg
        seen = observe(cfg, name)
        assert seen is not None and seen.powered_on is False
        for h in hosts:
            govc(cfg, "host.maintenance.exit", h)
        again = d.create(name, workload(name), *SPEC)
        assert again.changed and again.vm is not None and again.vm.powered_on
        seen = observe(cfg, name)
        assert seen is not None and seen.powered_on and len(vm_paths(cfg, name)) == 1
    finally:
        d.close()


def test_vcenter_that_never_answers_times_out(vcsim: Vcsim) -> None:
    """TCP accepted, nothing answered (a hung vCenter): a DriverError within the socket
    timeout, not a thread blocked forever (pyvmomi #627 for the version discovery)."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        port = srv.getsockname()[1]
        d = VsphereDriver(vcsim.config(url=f"https://127.0.0.1:{port}/sdk", timeout_s=1.0))
        started = time.monotonic()
        with pytest.raises(DriverError, match="unreachable"):
            d.capacity()
        assert time.monotonic() - started < 8, "bounded by the socket timeout"
        d.close()


@pytest.mark.parametrize("private_vcsim", ["-cluster 2"], indirect=True)
def test_migrate_in_relocates_within_vcenter(private_vcsim: Vcsim, govc_ready: Path,
                                             name: str) -> None:
    a = VsphereDriver(private_vcsim.config(cluster="DC0_C0", folder="site-a"))
    b = VsphereDriver(private_vcsim.config(cluster="DC0_C1", folder="site-b"))
    try:
        made = a.create(name, workload(name), *SPEC, address="10.9.0.8")
        assert made.vm is not None
        moved = b.migrate_in(name, workload(name), *SPEC, address="10.9.0.8")
        assert moved.changed and moved.vm is not None and moved.vm.powered_on
        assert moved.vm.ref == made.vm.ref, "relocated, not re-created"
        assert moved.vm.location == "DC0/DC0_C1/Resources"
        seen = observe(b.config, name)
        assert seen is not None and seen.location == "DC0/DC0_C1/Resources"
        assert vm_paths(b.config, name) == [f"/DC0/vm/site-b/{name}"]
        assert a.get(name) is None and a.delete(name).changed is False  # MIGRATE_OUT: no-op
        assert b.migrate_in(name, workload(name), *SPEC).changed is False
        assert b.delete(name).changed
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("private_vcsim", ["-cluster 2"], indirect=True)
def test_a_vm_moved_away_and_deleted_does_not_break_the_first_cluster(
        private_vcsim: Vcsim, govc_ready: Path, name: str) -> None:
    """After a relocation to another cluster and a delete there, the first cluster's host
    still lists the VM on the simulator (a stale reference, as a VM deleted meanwhile is on a
    real vCenter): reading capacity and creating there go on without it."""
    a = VsphereDriver(private_vcsim.config(cluster="DC0_C0", folder="site-a"))
    b = VsphereDriver(private_vcsim.config(cluster="DC0_C1", folder="site-b"))
    other = f"{workload(name)}x-g0-0"
    try:
        before = a.capacity()
        a.create(name, workload(name), *SPEC)
        assert b.migrate_in(name, workload(name), *SPEC, power_on=False).changed
        assert b.delete(name).changed
        assert a.capacity() == before
        assert a.create(other, workload(other), *SPEC).changed
        assert vm_paths(a.config, other) == [f"/DC0/vm/site-a/{other}"]
    finally:
        a.delete(other)
        a.close()
        b.close()


def test_clone_from_template(vcsim: Vcsim, govc_ready: Path, name: str) -> None:
    plain = vcsim.config()
    tmpl = f"tmpl{uuid.uuid4().hex[:6]}"
    govc(plain, "vm.create", "-on=false", "-c", "1", "-m", "512", "-net", "VM Network",
         "-folder", "/DC0/vm", tmpl)
    govc(plain, "vm.markastemplate", f"/DC0/vm/{tmpl}")
    d = VsphereDriver(vcsim.config(template=tmpl))
    try:
        res = d.create(name, workload(name), *SPEC)
        assert res.changed and res.vm is not None and res.vm.powered_on
        seen = observe(d.config, name)
        assert seen is not None and seen.workload_id == workload(name)
        assert (seen.vcpus, seen.memory_gib) == (SPEC[0], SPEC[1])
        assert seen.location == "DC0/DC0_C0/Resources"
        assert d.create(name, workload(name), *SPEC).changed is False
    finally:
        d.delete(name)
        d.close()
        govc(plain, "vm.destroy", f"/DC0/vm/{tmpl}")
