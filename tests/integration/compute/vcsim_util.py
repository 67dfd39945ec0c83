"""Helpers for the vSphere tests: a vcsim instance started through infra/vcsim/vcsimctl, and
govc as the outside checker (it reads vCenter without any of the driver's code)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[3]
VCSIMCTL = REPO / "infra" / "vcsim" / "vcsimctl"
STATE = Path(os.environ.get("TANDEM_STATE_DIR", str(REPO / ".local"))) / "vcsim"
GOVC = STATE / "bin" / "govc"
sys.path.insert(0, str(REPO / "tests" / "unit" / "compute"))

from contract import Observed  # noqa: E402

from tandem.services.compute.vsphere import VsphereConfig  # noqa: E402


def free_port() -> int:
    """A loopback port free now (a simulator restarted on it comes back where clients expect)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vcsimctl(*args: str, run_dir: Path | None = None, port: int = 0, sim_args: str = "",
             timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if sim_args:
        env["TANDEM_VCSIM_ARGS"] = sim_args
    if run_dir is not None:
        env["TANDEM_VCSIM_DIR"] = str(run_dir)
    if port:
        env["TANDEM_VCSIM_PORT"] = str(port)
    return subprocess.run([sys.executable, str(VCSIMCTL), *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


@dataclass(frozen=True)
class Vcsim:
    """A simulator in its run directory: its SDK URL (with login) and certificate; `port`
    fixed (0: picked at start) so that a restart comes back where clients expect it."""

    run_dir: Path
    port: int = 0
    sim_args: str = ""  # flags of infra/vcsim/main.go, e.g. "-cluster 2"

    def up(self) -> None:
        got = vcsimctl("up", run_dir=self.run_dir, port=self.port, sim_args=self.sim_args)
        if got.returncode != 0:
            raise AssertionError(f"vcsim did not start:\n{got.stdout}{got.stderr}")

    def down(self) -> None:
        vcsimctl("down", run_dir=self.run_dir, port=self.port)

    @property
    def url(self) -> str:
        return (self.run_dir / "url").read_text().strip()

    @property
    def ca_file(self) -> str:
        return str(self.run_dir / "cert.pem")

    @property
    def pid(self) -> int:
        return int((self.run_dir / "vcsim.pid").read_text())

    def config(self, **kw: object) -> VsphereConfig:
        p = urlsplit(self.url)
        base: dict[str, object] = dict(
            url=f"https://{p.hostname}:{p.port}{p.path}", user=p.username or "",
            password=p.password or "", ca_file=self.ca_file, datacenter="DC0",
            cluster="DC0_C0", folder="tandem-test", timeout_s=10.0, task_timeout_s=60.0)
        base.update(kw)
        return VsphereConfig(**base)  # type: ignore[arg-type]


def govc(cfg: VsphereConfig, *args: str) -> str:
    """Run govc against the vCenter of `cfg` (TLS verified with its CA file)."""
    p = urlsplit(cfg.url)
    env = dict(os.environ, GOVC_URL=f"https://{cfg.user}:{cfg.password}@{p.hostname}:{p.port}"
               f"{p.path}", GOVC_TLS_CA_CERTS=cfg.ca_file, GOVC_DATACENTER=cfg.datacenter)
    proc = subprocess.run([str(GOVC), *args], env=env, capture_output=True, text=True,
                          timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"govc {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def vm_paths(cfg: VsphereConfig, name: str) -> list[str]:
    """Every VM of that name anywhere in vCenter (a twin shows as two paths)."""
    return govc(cfg, "find", "/", "-type", "m", "-name", name).split()


def observe(cfg: VsphereConfig, name: str) -> Observed | None:
    paths = vm_paths(cfg, name)
    if not paths:
        return None
    assert len(paths) == 1, f"twins of {name!r}: {paths}"
    vm = json.loads(govc(cfg, "vm.info", "-json", "-e", paths[0]))["VirtualMachines"][0]
    extra = {o["Key"]: o["Value"] for o in vm["Config"]["ExtraConfig"] or []}
    pool = vm["ResourcePool"]
    # /DC0/host/DC0_C0/Resources -> DC0/DC0_C0/Resources (the driver's location terms)
    parts = govc(cfg, "ls", "-L", f"{pool['Type']}:{pool['Value']}").strip().strip("/").split("/")
    location = "/".join(parts[:1] + parts[2:]) if len(parts) > 1 and parts[1] == "host" else \
        "/".join(parts)
    hw = vm["Config"]["Hardware"]
    return Observed(extra.get("tandem.workload", ""), float(hw["NumCPU"]),
                    float(hw["MemoryMB"]) / 1024, vm["Runtime"]["PowerState"] == "poweredOn",
                    location)
