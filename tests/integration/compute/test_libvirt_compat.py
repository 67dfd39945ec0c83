"""The libvirt workarounds (services/compute/compat_libvirt_*) still fit what is installed.

Fails when libvirt or libvirt-python differ from the versions a workaround was written for
(then re-check the workaround against the new version and drop it if upstream changed), and
checks that the behaviour each one works around is still there. A missing libvirt-python
fails (never skips).
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

import pytest

from tandem.services.compute import compat_libvirt_error_stderr, compat_libvirt_undefine_flags


def lv() -> Any:
    try:
        import libvirt
    except ImportError as exc:
        pytest.fail(f"libvirt-python is not installed ({exc})", pytrace=False)
    return libvirt


def version_str(v: int) -> str:
    return f"{v // 1_000_000}.{v // 1000 % 1000}.{v % 1000}"


@pytest.mark.parametrize("module", [compat_libvirt_error_stderr, compat_libvirt_undefine_flags])
def test_written_for_the_installed_versions(module: Any) -> None:
    libvirt = lv()
    installed = {"libvirt": version_str(libvirt.getVersion()),
                 "libvirt-python": metadata.version("libvirt-python")}
    assert module.WRITTEN_FOR == installed, (
        f"{module.__name__} was written for {module.WRITTEN_FOR}, {installed} is installed: "
        "re-check it")


def test_test_driver_still_refuses_unknown_undefine_flags() -> None:
    libvirt = lv()
    compat_libvirt_error_stderr.apply(libvirt)
    conn = libvirt.open("test:///default")
    try:
        dom = conn.defineXML("<domain type='test'><name>compat-undef</name>"
                             "<memory>65536</memory><os><type>hvm</type></os></domain>")
        with pytest.raises(libvirt.libvirtError) as err:
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        assert err.value.get_error_code() == libvirt.VIR_ERR_INVALID_ARG
        compat_libvirt_undefine_flags.undefine(libvirt, dom)
        with pytest.raises(libvirt.libvirtError):
            conn.lookupByName("compat-undef")
    finally:
        conn.close()


def test_caught_errors_no_longer_reach_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    libvirt = lv()
    compat_libvirt_error_stderr.apply(libvirt)
    conn = libvirt.open("test:///default")
    try:
        with pytest.raises(libvirt.libvirtError):
            conn.lookupByName("no-such-domain")
    finally:
        conn.close()
    assert "no-such-domain" not in capfd.readouterr().err
