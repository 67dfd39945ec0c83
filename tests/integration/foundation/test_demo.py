"""`tandem demo` (the body of `make demo`), run as a user runs it, against the real broker; act
two builds its own emulated WAN on Open vSwitch (root, as CI runs)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from itest_wait import until_sync

DEMO = [sys.executable, "-m", "tandem.cli", "demo", "--timeout", "60"]


def _env(kafka_bootstrap: str) -> dict[str, str]:
    return {**os.environ, "TANDEM_KAFKA": kafka_bootstrap, "PYTHONUNBUFFERED": "1"}


def test_demo_runs_the_whole_loop_and_replays_identically(kafka_bootstrap: str) -> None:
    run = subprocess.run(DEMO, env=_env(kafka_bootstrap), capture_output=True, text=True,
                         timeout=240)
    out = run.stdout
    assert run.returncode == 0, f"exit {run.returncode}\n{out}\n{run.stderr[-4000:]}"
    assert "6 sites" in out and "7 links" in out  # the topology, read back through Faust
    assert "dead letters: 1" in out
    assert out.count("PLACED") >= 3 and "REJECTED" in out
    assert "goes DOWN" in out
    assert "decisions identical to the log" in out and "FIRST DIVERGENCE" not in out
    # Act two (CI runs as root): the whole loop acting on the emulated WAN.
    assert "order held; on tandem.approvals: approval pending shop" in out, out
    assert "shop: active [4/4] all steps acknowledged" in out
    assert "REROUTED  shop" in out and "shop: active [3/3] all steps acknowledged" in out
    received = [float(x) for x in re.findall(r"bytes received \(([\d.]+) %\)", out)]
    assert len(received) == 2 and min(received) >= 95.0, received  # before and after the cut
    assert "shop: released [2/2]" in out
    assert "entries of the workload left on the switches: 0" in out
    assert "the emulated WAN removed" in out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_ends_the_demo_promptly(kafka_bootstrap: str, tmp_path: Path, sig: int) -> None:
    """Ctrl-C (or SIGTERM) while the stream processors run ends the demo within a minute (it
    used to stay 20 minutes). `--hold` keeps them running after the last step, so the signal
    always finds them running, however fast the machine finishes the steps. The demo is started
    with SIGINT ignored, as a shell starts `cmd &` in a script (and as a CI runner did, where
    Ctrl-C then did nothing): it must end all the same."""
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        proc = subprocess.Popen([*DEMO, "--hold"], env=_env(kafka_bootstrap), stdout=out,
                                stderr=subprocess.STDOUT, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        def holding() -> bool:  # the worker is up and every step ran
            assert proc.poll() is None, log.read_text()[-4000:]
            return "holding:" in log.read_text()

        until_sync(holding, lambda: f"'holding:' in the demo's log: {log.read_text()[-4000:]}",
                   180, every=0.1)
        proc.send_signal(sig)
        rc = proc.wait(timeout=60)
        assert rc == 130, log.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
