"""Generated protobuf code is exactly what protoc makes from protos/ (never edited by hand)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_generated_code_matches_protos(tmp_path: Path) -> None:
    protos = sorted(str(p.relative_to(REPO)) for p in (REPO / "protos").rglob("*.proto"))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", "protos", f"--python_out={tmp_path}",
         f"--pyi_out={tmp_path}", *protos],
        cwd=REPO, check=True,
    )
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*_pb2*.py*"))
    assert fresh, "protoc produced nothing"
    for rel in fresh:
        current = REPO / rel
        assert current.exists(), f"{rel} is missing: run `make protos`"
        assert current.read_bytes() == (tmp_path / rel).read_bytes(), (
            f"{rel} differs from what protoc generates from protos/: run `make protos` "
            "(generated code is never edited by hand)"
        )
