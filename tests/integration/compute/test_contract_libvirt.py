"""The driver contract on libvirt's built-in test driver, and what is libvirt's own.

The test driver (`test:///<file>.xml`) defines and runs domains with no hypervisor, from a node
description written here: a host of 32 CPUs and 64 GiB, a `default` network and a storage
pool `tandem` (the test driver gives every pool 100 GiB). Each connection to such a file gets
its own private state, so every test starts on an empty host; the hypervisor's own view
(`observe`) is read with raw libvirt calls on the driver's connection.

libvirt-python missing FAILS these tests (it never skips them): `apt-get install libvirt-dev
pkg-config` then `pip install libvirt-python`.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "compute"))
from contract import SPEC, DriverContract, Observed  # noqa: E402

from tandem.services.compute.driver import Driver, DriverError  # noqa: E402

NS = "urn:tandem:compute:1"
NODE_XML = """<?xml version="1.0"?>
<node>
  <cpu><mhz>2400</mhz><model>x86_64</model><active>32</active><nodes>1</nodes>
       <sockets>2</sockets><cores>8</cores><threads>2</threads></cpu>
  <memory>67108864</memory>
  <network>
    <name>default</name>
    <bridge name="virbr0"/>
    <forward/>
    <ip address="192.168.122.1" netmask="255.255.255.0">
      <dhcp><range start="192.168.122.2" end="192.168.122.254"/></dhcp>
    </ip>
  </network>
  <pool type="dir">
    <name>tandem</name>
    <target><path>/var/lib/tandem-test-pool</path></target>
  </pool>
</node>
"""


def libvirt_module() -> Any:
    try:
        import libvirt
    except ImportError as exc:
        pytest.fail(f"libvirt-python is not installed ({exc}): apt-get install libvirt-dev "
                    "pkg-config && .venv/bin/pip install libvirt-python", pytrace=False)
    return libvirt


@pytest.fixture
def node_xml(tmp_path: Path) -> str:
    path = tmp_path / "node.xml"
    path.write_text(NODE_XML)
    return f"test://{path}"


def make_driver(uri: str) -> Any:
    libvirt_module()
    from tandem.services.compute.libvirt_driver import LibvirtConfig, LibvirtDriver
    return LibvirtDriver(LibvirtConfig(uri=uri, pool="tandem", network="default",
                                       shutdown_timeout_s=5))


class TestLibvirtContract(DriverContract):
    @pytest.fixture
    def driver(self, node_xml: str) -> Iterator[Driver]:
        d = make_driver(node_xml)
        yield d
        d.close()

    def observe(self, driver: Driver, name: str) -> Observed | None:
        lv = libvirt_module()
        conn = driver.connection()  # type: ignore[attr-defined]
        try:
            dom = conn.lookupByName(name)
        except lv.libvirtError as exc:
            assert exc.get_error_code() == lv.VIR_ERR_NO_DOMAIN, exc
            return None
        root = ET.fromstring(dom.XMLDesc(0))
        meta = root.find(f"metadata/{{{NS}}}vm")
        mem = root.find("memory")
        assert mem is not None and mem.get("unit") == "KiB"
        src = root.find("devices/disk/source")
        return Observed(
            workload_id=meta.get("workload", "") if meta is not None else "",
            vcpus=float(root.findtext("vcpu", "0")),
            memory_gib=int(mem.text or 0) / 1024 ** 2,
            powered_on=dom.state()[0] == lv.VIR_DOMAIN_RUNNING,
            location=f"{conn.getHostname()}/{src.get('pool') if src is not None else ''}")

    def expected_location(self, driver: Driver) -> str:
        return f"{driver.connection().getHostname()}/tandem"  # type: ignore[attr-defined]


# -- what is libvirt's own -------------------------------------------------------------------

@pytest.fixture
def driver(node_xml: str) -> Iterator[Any]:
    d = make_driver(node_xml)
    yield d
    d.close()


def test_capacity_is_the_host_of_the_node_xml(driver: Any) -> None:
    cap = driver.capacity()
    assert (cap.vcpus, cap.memory_gib) == (32.0, 64.0)
    assert cap.storage_gib == pytest.approx(100.0)  # the test driver's pool size


def foreign_domain(conn: Any, name: str) -> Any:
    xml = (f"<domain type='test'><name>{name}</name><memory unit='GiB'>4</memory>"
           "<vcpu>4</vcpu><os><type>hvm</type></os></domain>")
    return conn.defineXML(xml)


def test_foreign_domain_is_counted_never_touched(driver: Any) -> None:
    conn = driver.connection()
    dom = foreign_domain(conn, "other-vm")
    assert driver.capacity().vcpus == 32  # defined, not running: takes nothing
    dom.create()
    cap = driver.capacity()
    assert (cap.vcpus, cap.memory_gib) == (28.0, 60.0)
    assert driver.get("other-vm") is None and driver.list() == []
    for op in (lambda: driver.create("other-vm", "w1", *SPEC), lambda: driver.delete("other-vm"),
               lambda: driver.power("other-vm", False)):
        with pytest.raises(DriverError, match="other-vm.*not Tandem's"):
            op()
    assert dom.isActive()


def test_metadata_holds_the_workload_and_address(driver: Any) -> None:
    driver.create("w1-g0-0", "w1", *SPEC, address="10.1.0.9")
    dom = driver.connection().lookupByName("w1-g0-0")
    lv = libvirt_module()
    meta = ET.fromstring(dom.metadata(lv.VIR_DOMAIN_METADATA_ELEMENT, NS))
    assert (meta.get("workload"), meta.get("address")) == ("w1", "10.1.0.9")


def test_addresses_given_first_then_the_hypervisors(driver: Any) -> None:
    vm = driver.create("w1-g0-0", "w1", *SPEC, address="10.1.0.9").vm
    # the test driver reports a made-up DHCP address for a running NIC
    assert vm.addresses[0] == "10.1.0.9" and vm.addresses[1].startswith("192.168.122.")
    off = driver.power("w1-g0-0", False).vm
    assert off.addresses == ("10.1.0.9",)


def test_interrupted_create_is_finished_and_orphan_disk_deleted(driver: Any) -> None:
    conn = driver.connection()
    pool = conn.storagePoolLookupByName("tandem")
    # a create that died after making the disk, before defining the domain
    pool.createXML("<volume><name>w1-g0-0.qcow2</name><capacity unit='GiB'>2</capacity>"
                   "<allocation>0</allocation></volume>", 0)
    res = driver.create("w1-g0-0", "w1", *SPEC)
    assert res.changed and res.vm.powered_on
    assert [v.name() for v in pool.listAllVolumes()] == ["w1-g0-0.qcow2"]
    driver.delete("w1-g0-0")
    assert pool.listAllVolumes() == []
    # a disk left alone (its create never retried) goes with the VM's delete
    pool.createXML("<volume><name>w1-g0-1.qcow2</name><capacity unit='GiB'>2</capacity>"
                   "<allocation>0</allocation></volume>", 0)
    assert driver.delete("w1-g0-1").changed is True
    assert pool.listAllVolumes() == [] and driver.delete("w1-g0-1").changed is False


def test_failures_name_the_vm_and_a_repeat_finishes(driver: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pool = driver.connection().storagePoolLookupByName("tandem")
    pool.destroy()  # the pool goes away under the unit
    with pytest.raises(DriverError, match=r"VM 'w1-g0-0': create: storage pool 'tandem'.*not "
                                          r"active"):
        driver.create("w1-g0-0", "w1", *SPEC)
    assert driver.get("w1-g0-0") is None
    pool.create()
    assert driver.create("w1-g0-0", "w1", *SPEC).changed is True
    lv = libvirt_module()

    def refuse(self: Any, *args: Any) -> int:  # libvirt refusing midway (after the destroy)
        exc = lv.libvirtError("undefine refused")
        exc.err = (lv.VIR_ERR_OPERATION_FAILED, 0, "undefine refused", 2, "", "", "", 0, 0)
        raise exc

    with monkeypatch.context() as m:
        m.setattr(lv.virDomain, "undefineFlags", refuse)
        m.setattr(lv.virDomain, "undefine", refuse)
        with pytest.raises(DriverError, match=r"VM 'w1-g0-0': delete on test://.*: undefine "
                                              r"refused"):
            driver.delete("w1-g0-0")
    got = driver.get("w1-g0-0")
    assert got is not None and got.powered_on is False  # stopped, still defined
    assert driver.delete("w1-g0-0").changed is True and driver.get("w1-g0-0") is None


def test_disk_and_nic_of_the_domain(driver: Any) -> None:
    driver.create("w1-g0-0", "w1", *SPEC)
    root = ET.fromstring(driver.connection().lookupByName("w1-g0-0").XMLDesc(0))
    src = root.find("devices/disk/source")
    assert src is not None and (src.get("pool"), src.get("volume")) == ("tandem",
                                                                        "w1-g0-0.qcow2")
    nic = root.find("devices/interface")
    assert nic is not None and nic.find("source").get("network") == "default"
    mac = nic.find("mac").get("address")
    driver.delete("w1-g0-0")
    driver.create("w1-g0-0", "w1", *SPEC)  # re-created: the same MAC
    root = ET.fromstring(driver.connection().lookupByName("w1-g0-0").XMLDesc(0))
    assert root.find("devices/interface/mac").get("address") == mac


def test_lost_connection_is_reopened() -> None:
    # test:///default is shared by the connections of a process: state survives a reconnect
    lv = libvirt_module()
    from tandem.services.compute.libvirt_driver import LibvirtConfig, LibvirtDriver
    keep = lv.open("test:///default")  # holds the shared state while the driver's goes
    d = LibvirtDriver(LibvirtConfig(uri="test:///default", pool="default-pool"))
    try:
        before = d.capacity()
        lost = d.connection()
        lost.close()
        assert d.capacity() == before
        assert d.connection() is not lost
    finally:
        d.close()
        keep.close()


def test_wrong_uri_or_pool_fails_at_start(node_xml: str, tmp_path: Path) -> None:
    libvirt_module()
    from tandem.services.compute.libvirt_driver import LibvirtConfig, LibvirtDriver
    with pytest.raises(DriverError, match="cannot connect"):
        LibvirtDriver(LibvirtConfig(uri=f"test://{tmp_path}/absent.xml"))
    with pytest.raises(DriverError, match="no storage pool 'nope'"):
        LibvirtDriver(LibvirtConfig(uri=node_xml, pool="nope"))
    with pytest.raises(DriverError, match="no network 'nope'"):
        LibvirtDriver(LibvirtConfig(uri=node_xml, pool="tandem", network="nope"))


def test_the_unit_applies_commands_through_libvirt(driver: Any) -> None:
    from tandem.services.compute.unit import ack_for, apply
    from tandem.v1 import commands_pb2
    C = commands_pb2.ComputeCommand
    vm = commands_pb2.VmSpec(vm_name="w7-g0-0", workload_id="w7", vcpus=2, memory_gib=1,
                             storage_gib=2)
    create = C(command_id="c1", site_id="ams", action=C.ACTION_CREATE, vm=vm,
               ipv4_address="10.7.0.2")
    ack = ack_for("ams", create, apply(driver, create), "", 1.0)
    assert ack.status == commands_pb2.ACK_STATUS_OK and ack.addresses[0] == "10.7.0.2"
    assert ack.vm_ref == driver.get("w7-g0-0").ref
    again = ack_for("ams", create, apply(driver, create), "", 1.0)
    assert again.status == commands_pb2.ACK_STATUS_NOOP
    delete = C(command_id="c2", site_id="ams", action=C.ACTION_DELETE, vm=vm)
    assert ack_for("ams", delete, apply(driver, delete), "", 1.0).status == \
        commands_pb2.ACK_STATUS_OK
    assert driver.list() == []
