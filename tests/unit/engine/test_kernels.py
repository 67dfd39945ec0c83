"""The compiled path kernels: numba is a declared dependency, its cache is used, and the
interpreted source gives the same paths (numba is for speed, never for correctness)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tandem.engine import kernels

REPO = Path(__file__).resolve().parents[3]

# Paths of every kind on a reference file, as plain data, from a fresh interpreter.
_PROBE = """
import json
from tandem.engine import kernels
from tandem.engine.loaders import load_topology
from tandem.engine.paths import PathFinder
pf = PathFinder(load_topology("data/zoo/Geant2012.graphml"))
pairs = [("n0", "n30"), ("n5", "n17"), ("n12", "n39"), ("n26", "n9")]
out = {"compiled": kernels.COMPILED, "paths": []}
for a, b in pairs:
    for p in [pf.shortest(a, b)] + pf.k_shortest(a, b, 4) + pf.edge_disjoint(a, b, 4):
        out["paths"].append(None if p is None else [list(p.sites), list(p.links), p.latency_ms])
ps = pf.all_pairs_edge_disjoint(2)
out["all_pairs"] = [int(ps.n_paths), [list(p.links) for p in ps["n3", "n22"]]]
print(json.dumps(out))
"""


def _probe(env: dict[str, str]) -> dict[str, object]:
    run = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, **env}, timeout=240)
    assert run.returncode == 0, run.stderr
    got: dict[str, object] = json.loads(run.stdout)
    return got


def test_numba_is_installed_and_used() -> None:
    # pyproject.toml declares numba: an environment built by `make` compiles the kernels.
    assert kernels.COMPILED


def test_interpreted_kernels_find_the_same_paths() -> None:
    jit = _probe({})
    plain = _probe({"NUMBA_DISABLE_JIT": "1"})
    assert jit["compiled"] is True
    assert jit["paths"] == plain["paths"]
    assert jit["all_pairs"] == plain["all_pairs"]


def test_compiled_kernels_are_cached_on_disk(tmp_path: Path) -> None:
    # A short-lived command must not recompile: the second process loads the machine code.
    _probe({"NUMBA_CACHE_DIR": str(tmp_path)})
    assert any(tmp_path.rglob("*.nbi")), "no numba cache index written"
    assert any(tmp_path.rglob("*.nbc")), "no compiled kernel cached"
