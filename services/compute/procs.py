"""Compute control units as processes, for the demo, the benchmarks and the tests: one
`tandem compute --site X` per site, started and stopped by its handle (never by name).

Why one helper: the demo, three benchmarks and three test suites each started these units with
their own copy of the command line; a flag the unit gains (or loses) now changes in one place.
The sdn counterpart is `tandem.sdn.procs.Units`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path


def start_unit(site: str, broker: str, prefix: str, log_dir: Path, driver: str = "sim",
               env: Mapping[str, str] | None = None, fail: str = "",
               capacity_interval_s: float | None = 60.0,
               retry_s: float | None = None) -> subprocess.Popen[bytes]:
    """`tandem compute --site SITE --driver DRIVER` on `broker` under topic prefix `prefix`,
    its output appended to `log_dir/compute-SITE.log`. `env`: more variables (the vSphere
    driver's TANDEM_VSPHERE_*); `fail`: sim, VM names whose creation it refuses; None leaves a
    setting at the unit's default."""
    cmd = [sys.executable, "-m", "tandem.cli", "compute", "--site", site, "--driver", driver]
    if fail:
        cmd += ["--fail", fail]
    if capacity_interval_s is not None:
        cmd += ["--capacity-interval", str(capacity_interval_s)]
    if retry_s is not None:
        cmd += ["--retry-seconds", str(retry_s)]
    full = {**os.environ, "TANDEM_KAFKA": broker, "TANDEM_TOPIC_PREFIX": prefix, **(env or {})}
    with open(log_dir / f"compute-{site}.log", "ab") as log:  # the child keeps its own copy
        return subprocess.Popen(cmd, env=full, stdout=log, stderr=subprocess.STDOUT)


def stop_units(procs: Iterable[subprocess.Popen[bytes]], timeout_s: float = 30.0) -> None:
    """SIGTERM to each (they stop together), then wait; SIGKILL one that does not stop."""
    procs = list(procs)
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
