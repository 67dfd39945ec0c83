"""The libvirt XML the KVM driver writes and reads (pure: no libvirt needed)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from tandem.services.compute.libvirt_xml import (NS, domain_xml, mac_of, parse_domain,
                                                 volume_xml)


def make(**kw: object) -> str:
    args: dict[str, object] = dict(name="w1-g0-0", workload_id="w1", address="10.0.0.5",
                                   vcpus=2, memory_gib=1.5, domain_type="kvm", arch="x86_64",
                                   pool="images", volume="w1-g0-0.qcow2", network="default")
    args.update(kw)
    return domain_xml(**args)  # type: ignore[arg-type]


def test_domain_round_trip() -> None:
    facts = parse_domain(make())
    assert facts.workload == "w1" and facts.address == "10.0.0.5"
    assert facts.vcpus == 2 and facts.memory_kib == int(1.5 * 1024 * 1024)
    assert (facts.pool, facts.volume) == ("images", "w1-g0-0.qcow2")


def test_metadata_in_our_namespace() -> None:
    root = ET.fromstring(make())
    assert root.find(f"metadata/{{{NS}}}vm") is not None
    assert f'xmlns:tandem="{NS}"' in make()


def test_names_cannot_inject_xml() -> None:
    evil = "x'/><vcpu>64</vcpu><name>y"
    facts = parse_domain(make(name=evil, workload_id='w"1<'))
    assert facts.vcpus == 2 and facts.workload == 'w"1<'
    assert ET.fromstring(make(name=evil)).findtext("name") == evil


def test_foreign_domain_has_no_workload() -> None:
    facts = parse_domain("<domain type='kvm'><name>x</name><memory unit='MiB'>512</memory>"
                         "<vcpu placement='static'>1</vcpu></domain>")
    assert facts.workload == "" and facts.memory_kib == 512 * 1024 and facts.vcpus == 1


def test_mac_stable_and_local() -> None:
    assert mac_of("w1-g0-0") == mac_of("w1-g0-0") != mac_of("w1-g0-1")
    assert mac_of("w1-g0-0").startswith("52:54:00:")


def test_volume_thin_and_backed_by_the_template() -> None:
    vol = ET.fromstring(volume_xml("a.qcow2", 2.0, "/var/lib/libvirt/images/base.qcow2"))
    assert vol.findtext("capacity") == str(2 * 1024 ** 3) and vol.findtext("allocation") == "0"
    assert vol.findtext("backingStore/path") == "/var/lib/libvirt/images/base.qcow2"
    assert ET.fromstring(volume_xml("a.qcow2", 2.0)).find("backingStore") is None
