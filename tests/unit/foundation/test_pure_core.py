"""The pure core stays pure (no I/O framework reachable from it) and type-checks strictly."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PURE = ["tandem.engine", "tandem.engine.decide", "tandem.engine.react", "tandem.engine.reoptimise",
        "tandem.engine.baselines", "tandem.engine.milp", "tandem.engine.loaders",
        "tandem.engine.te", "tandem.engine.lp", "tandem.decider", "tandem.steps",
        "tandem.executor", "tandem.addressing", "tandem.validation", "tandem.inventory",
        "tandem.snapshot", "tandem.check", "tandem.rollout"]
# Frameworks and adapters that must not be reachable at all (transitively): the core knows
# sites, links and workloads, never switch ports or the emulator.
FORBIDDEN = ["faust", "aiokafka", "kafka", "grpc", "os_ken", "pyVmomi", "pyvmomi", "mode",
             "tandem.sdn", "tandem.streams", "tandem.services"]
# Standard-library I/O the pure sources must not import themselves (scipy may, internally).
IO_MODULES = {"socket", "subprocess", "asyncio", "urllib", "http", "requests", "threading"}
PURE_FILES = sorted((REPO / "tandem" / "engine").rglob("*.py")) + [
    REPO / "tandem" / f for f in ("decider.py", "rollout.py", "steps.py", "executor.py",
                                  "addressing.py",
                                  "validation.py", "events.py",
                                  "inventory.py", "requests.py", "linkstate.py", "snapshot.py",
                                  "check.py")]


@pytest.mark.parametrize("module", PURE)
def test_no_io_framework_is_imported(module: str) -> None:
    probe = (f"import sys, importlib; importlib.import_module({module!r}); "
             f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"{module} pulls in {out.stdout.strip()}"


@pytest.mark.parametrize("path", PURE_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_pure_sources_import_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in IO_MODULES, f"{path}:{node.lineno} imports {name}"


def test_mypy_strict_on_the_pure_core() -> None:
    out = subprocess.run([sys.executable, "-m", "mypy"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
