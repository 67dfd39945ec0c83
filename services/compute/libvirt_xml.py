"""The libvirt XML the KVM driver writes and reads: domains, volumes, our metadata.

Kept apart from the driver (services/compute/libvirt_driver.py) because it is pure: built and
parsed with ElementTree (never string formatting, so a name cannot inject XML), testable
without libvirt. Our own metadata lives in the domain's `<metadata>` under the namespace `NS`:
`<tandem:vm workload="..." address="..."/>`; a domain without it is not Tandem's.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass

NS = "urn:tandem:compute:1"
GIB = 1024 ** 3
KIB_PER_GIB = 1024 * 1024
_KIB_PER_UNIT = {"KiB": 1.0, "k": 1.0, "MiB": 1024.0, "M": 1024.0, "GiB": float(KIB_PER_GIB),
                 "G": float(KIB_PER_GIB), "b": 1 / 1024, "bytes": 1 / 1024}


@dataclass(frozen=True)
class DomainFacts:
    """What the driver reads from a domain's XML (one XMLDesc call)."""

    workload: str  # "" when the domain is not ours
    address: str
    vcpus: int
    memory_kib: int
    pool: str
    volume: str


def parse_domain(xml: str) -> DomainFacts:
    root = ET.fromstring(xml)
    meta = root.find(f"metadata/{{{NS}}}vm")
    mem = root.find("memory")
    memory_kib = 0
    if mem is not None:
        memory_kib = int(int((mem.text or "0").strip()) * _KIB_PER_UNIT.get(
            mem.get("unit", "KiB"), 1.0))
    src = root.find("devices/disk[@device='disk']/source")
    return DomainFacts(
        workload=meta.get("workload", "") if meta is not None else "",
        address=meta.get("address", "") if meta is not None else "",
        vcpus=int((root.findtext("vcpu") or "0").strip() or 0),
        memory_kib=memory_kib,
        pool=src.get("pool", "") if src is not None else "",
        volume=src.get("volume", "") if src is not None else "")


def mac_of(name: str) -> str:
    """A MAC derived from the VM's name (QEMU's 52:54:00 prefix): a re-created VM keeps it,
    so DHCP reservations and switch tables keyed by MAC still hold."""
    h = hashlib.sha256(name.encode()).digest()
    return "52:54:00:%02x:%02x:%02x" % (h[0], h[1], h[2])


def volume_xml(name: str, storage_gib: float, base_image: str = "") -> str:
    """A thin qcow2 volume (allocation 0: the pool's free space is not taken up front; the
    driver counts what it may grow into), backed by `base_image` when given (the template)."""
    vol = ET.Element("volume")
    ET.SubElement(vol, "name").text = name
    ET.SubElement(vol, "capacity", unit="bytes").text = str(int(storage_gib * GIB))
    ET.SubElement(vol, "allocation", unit="bytes").text = "0"
    ET.SubElement(ET.SubElement(vol, "target"), "format", type="qcow2")
    if base_image:
        back = ET.SubElement(vol, "backingStore")
        ET.SubElement(back, "path").text = base_image
        ET.SubElement(back, "format", type="qcow2")
    return ET.tostring(vol, encoding="unicode")


def domain_xml(*, name: str, workload_id: str, address: str, vcpus: int, memory_gib: float,
               domain_type: str, arch: str, pool: str, volume: str, network: str) -> str:
    """A persistent domain with our metadata in it: defined in one call, so no domain of
    ours exists, even for an instant, without the workload that keys its idempotency."""
    ET.register_namespace("tandem", NS)
    dom = ET.Element("domain", type=domain_type)
    ET.SubElement(dom, "name").text = name
    meta = ET.SubElement(dom, "metadata")
    ET.SubElement(meta, f"{{{NS}}}vm", workload=workload_id, address=address)
    kib = str(int(round(memory_gib * KIB_PER_GIB)))
    ET.SubElement(dom, "memory", unit="KiB").text = kib
    ET.SubElement(dom, "currentMemory", unit="KiB").text = kib
    ET.SubElement(dom, "vcpu").text = str(vcpus)
    os_ = ET.SubElement(dom, "os")
    ET.SubElement(os_, "type", arch=arch).text = "hvm"
    ET.SubElement(os_, "boot", dev="hd")
    devices = ET.SubElement(dom, "devices")
    disk = ET.SubElement(devices, "disk", type="volume", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="qcow2")
    ET.SubElement(disk, "source", pool=pool, volume=volume)
    ET.SubElement(disk, "target", dev="vda", bus="virtio")
    nic = ET.SubElement(devices, "interface", type="network")
    ET.SubElement(nic, "source", network=network)
    ET.SubElement(nic, "mac", address=mac_of(name))
    ET.SubElement(nic, "model", type="virtio")
    return ET.tostring(dom, encoding="unicode")
