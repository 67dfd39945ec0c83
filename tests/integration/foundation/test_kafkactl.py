"""The broker script: reuse of a running broker, clear failures instead of hangs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
KAFKACTL = REPO / "infra" / "kafka" / "kafkactl"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(KAFKACTL), *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_up_reuses_the_running_broker(kafka_bootstrap: str) -> None:
    status = run("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "answering" in status.stdout
    again = run("up")
    assert again.returncode == 0, again.stderr
    assert "reused" in again.stdout


def test_port_taken_fails_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        res = run("up", env={"TANDEM_STATE_DIR": str(tmp_path), "TANDEM_KAFKA_PORT": str(port),
                             "TANDEM_KAFKA_CONTROLLER_PORT": str(port + 1)})
    assert res.returncode == 1
    assert f"port 127.0.0.1:{port} is taken" in res.stderr
    assert not (tmp_path / "kafka" / "kafka.pid").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_missing_java_fails_with_a_clear_message(tmp_path: Path) -> None:
    port = free_port()
    res = run("up", env={"TANDEM_STATE_DIR": str(tmp_path), "TANDEM_KAFKA_PORT": str(port),
                         "TANDEM_KAFKA_CONTROLLER_PORT": str(free_port()), "PATH": str(tmp_path)})
    assert res.returncode == 1
    assert "Java is not installed" in res.stderr


def test_down_without_a_broker_of_ours_is_harmless(tmp_path: Path) -> None:
    res = run("down", env={"TANDEM_STATE_DIR": str(tmp_path)})
    assert res.returncode == 0
    assert "no broker started by this project" in res.stdout
