"""The vSphere driver's pure parts: configuration from the environment, the pyvmomi #627
workaround (a version discovery that times out), fault texts. No vCenter needed."""

from __future__ import annotations

import socket
import time

import pytest
from pyVim import connect
from pyVmomi import vim

from tandem.services.compute import compat_pyvmomi_627
from tandem.services.compute.driver import DriverError
from tandem.services.compute.vsphere import VsphereConfig
from tandem.services.compute.vsphere_session import Endpoint, fault_text


def test_from_env_reads_everything() -> None:
    cfg = VsphereConfig.from_env({
        "TANDEM_VSPHERE_URL": "https://vc.example.org/sdk", "TANDEM_VSPHERE_USER": "u",
        "TANDEM_VSPHERE_PASSWORD": "p", "TANDEM_VSPHERE_CA_FILE": "/etc/ca.pem",
        "TANDEM_VSPHERE_INSECURE": "0", "TANDEM_VSPHERE_CLUSTER": "C1",
        "TANDEM_VSPHERE_FOLDER": "tandem/ams", "TANDEM_VSPHERE_VCPU_OVERCOMMIT": "4",
        "TANDEM_VSPHERE_ENFORCE_CAPACITY": "0", "TANDEM_VSPHERE_TIMEOUT_S": "12"})
    assert (cfg.url, cfg.user, cfg.password, cfg.ca_file) == (
        "https://vc.example.org/sdk", "u", "p", "/etc/ca.pem")
    assert cfg.insecure is False and cfg.enforce_capacity is False
    assert (cfg.cluster, cfg.folder, cfg.vcpu_overcommit, cfg.timeout_s) == (
        "C1", "tandem/ams", 4.0, 12.0)
    ep = cfg.endpoint()
    assert isinstance(ep, Endpoint) and ep.public() == "https://vc.example.org:443/sdk"


def test_from_env_names_what_is_missing() -> None:
    with pytest.raises(DriverError) as err:
        VsphereConfig.from_env({"TANDEM_VSPHERE_URL": "https://vc/sdk"})
    assert "TANDEM_VSPHERE_USER" in str(err.value) and "TANDEM_VSPHERE_PASSWORD" in str(err.value)


def test_version_discovery_times_out() -> None:
    """Without the workaround pyVim's discovery request would block on a silent server."""
    compat_pyvmomi_627.apply(0.5)
    assert compat_pyvmomi_627.applied()
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        conn = connect.HTTPSConnection("127.0.0.1", srv.getsockname()[1])
        assert conn.timeout == 0.5
        started = time.monotonic()
        with pytest.raises(OSError):
            conn.request("GET", "/sdk/vimServiceVersions.xml")
            conn.getresponse()
        assert time.monotonic() - started < 5


def test_fault_text_names_the_fault() -> None:
    text = fault_text(vim.fault.InvalidState(msg="host in maintenance"))
    assert text == "vim.fault.InvalidState: host in maintenance"
    assert fault_text(ConnectionRefusedError(111, "refused")).startswith("ConnectionRefusedError")
