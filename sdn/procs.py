"""Control-unit processes for tests, benchmarks and by-hand sessions: one `tandem sdn` per
site of an emulated WAN, started and stopped by PID (never by name)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _sh(*argv: str) -> str:
    return subprocess.run(list(argv), capture_output=True, text=True).stdout


class Units:
    """One `tandem sdn` process per site, started and stopped by PID."""

    def __init__(self, layout: dict[str, Any], bootstrap: str, prefix: str, run_dir: Path,
                 reconcile_interval: float = 600.0, stats_interval: float = 1.0,
                 lldp_interval: float = 1.0) -> None:
        self.layout = layout
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.run_dir = run_dir
        self.reconcile_interval = reconcile_interval
        self.stats_interval = stats_interval
        self.lldp_interval = lldp_interval
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        run_dir.mkdir(parents=True, exist_ok=True)

    def start(self, site: str) -> None:
        s = self.layout["sites"][site]
        with open(self.run_dir / f"{site}.log", "ab") as log:
            self.procs[site] = subprocess.Popen(
                [sys.executable, "-m", "tandem.cli", "sdn", "--site", site, "--broker",
                 self.bootstrap, "--prefix", self.prefix, "--of-port", str(s["of_port"]),
                 "--stats-interval", str(self.stats_interval),
                 "--lldp-interval", str(self.lldp_interval),
                 "--reconcile-interval", str(self.reconcile_interval),
                 "--pidfile", str(self.run_dir / f"{site}.pid")],
                stdout=log, stderr=subprocess.STDOUT)

    def stop(self, site: str) -> None:
        p = self.procs.pop(site, None)
        if p is None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)

    def alive(self, site: str) -> bool:
        p = self.procs.get(site)
        return p is not None and p.poll() is None

    def wait_connected(self, sites: list[str] | None = None, timeout: float = 30.0) -> None:
        sites = sites or list(self.layout["sites"])
        deadline = time.monotonic() + timeout
        while True:
            missing = []
            for site in sites:
                if not self.alive(site):
                    raise RuntimeError(f"control unit of {site} died; see "
                                       f"{self.run_dir}/{site}.log")
                br = self.layout["sites"][site]["bridge"]
                if _sh("ovs-vsctl", "get", "controller", br, "is_connected").strip() != "true":
                    missing.append(site)
            if not missing:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"switches of {missing} did not connect to their units")
            time.sleep(0.2)

    def log(self, site: str) -> str:
        return (self.run_dir / f"{site}.log").read_text(errors="replace")


