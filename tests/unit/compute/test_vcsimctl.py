"""infra/vcsim/vcsimctl's failure messages, without building anything: Go missing, a build
that fails, a `down` with nothing of ours running."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

CTL = Path(__file__).resolve().parents[3] / "infra" / "vcsim" / "vcsimctl"


def load() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("vcsimctl", str(CTL))
    spec = importlib.util.spec_from_loader("vcsimctl", loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CTL), *args], capture_output=True, text=True,
                          env=dict(os.environ, TANDEM_STATE_DIR=str(tmp_path), **env),
                          timeout=60)


def test_go_missing_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    ctl = load()
    monkeypatch.setenv("TANDEM_GO", "")
    monkeypatch.setattr(ctl.shutil, "which", lambda _name: None)
    monkeypatch.setattr(ctl.os, "access", lambda _path, _mode: False)
    with pytest.raises(ctl.Fail, match="Go is not installed"):
        ctl.go_exe()


def test_failing_build_is_said(tmp_path: Path) -> None:
    fake_go = tmp_path / "go"
    fake_go.write_text("#!/bin/sh\necho 'main.go:1: syntax error' >&2\nexit 1\n")
    fake_go.chmod(0o755)
    got = run(tmp_path, "up", TANDEM_GO=str(fake_go))
    assert got.returncode == 1
    assert "building infra/vcsim failed (exit 1)" in got.stderr
    assert "main.go:1: syntax error" in got.stderr
    assert not (tmp_path / "vcsim" / "vcsim.pid").exists()


def test_down_and_status_with_nothing_running(tmp_path: Path) -> None:
    (tmp_path / "vcsim").mkdir()
    (tmp_path / "vcsim" / "vcsim.pid").write_text(f"{os.getpid()}\n")  # not a simulator
    down = run(tmp_path, "down")
    assert down.returncode == 0 and "no simulator started by this project" in down.stdout
    assert run(tmp_path, "status").returncode == 3
    assert run(tmp_path, "url").returncode == 3
