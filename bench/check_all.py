"""Rule violations of `tandem plan` on every network in data/, counted by `tandem check`.

Issue 10's "done when": the number of rule violations `tandem check` finds on `tandem plan`
output for every network in `data/` (target 0). This runs exactly what a user would, as
separate processes, so nothing is shared between the planner and the checker except the files:

    tandem plan  --topology T --generate 200 --seed S --requests R     # workgen stream
    tandem plan  --topology T --requests R --out P                    # the engine
    tandem check --topology T --requests R --plan P                   # the independent check

per topology file found under `data/` (GraphML, SNDlib, node-link JSON; the generated
1,000-site WAN included) and per seed. A plan is counted as violating when `tandem check`
exits 1 (its rows are counted); any other failure (exit 2, a crash) fails the run.

    python -m tandem.bench.check_all [--data data] [--requests 200] [--seeds 1]
                                     [--topology FILE ...] [--out bench/out/check_all.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = _ROOT / "bench/out/check_all.json"
SUFFIXES = {".graphml", ".txt", ".json"}


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=str(_ROOT / "data"), help="directory searched for topologies")
    p.add_argument("--topology", action="append", default=None, metavar="FILE",
                   help="check only these files (repeatable)")
    p.add_argument("--requests", type=int, default=200, help="requests per stream (200)")
    p.add_argument("--seeds", default="1", help="workgen seeds, e.g. 1 or 1-3 or 1,4 (1)")
    p.add_argument("--out", default=str(DEFAULT_OUT))


def register(sub: Any) -> None:
    p = sub.add_parser("check-all", help="tandem check on tandem plan output, every network")
    add_args(p)
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tandem.bench.check_all",
                                description=__doc__.splitlines()[0])
    add_args(p)
    return run(p.parse_args(argv))


def topologies(data: Path) -> list[Path]:
    """Topology files under `data` (READMEs and other files skipped), sorted."""
    return sorted(f for f in data.rglob("*") if f.is_file() and f.suffix in SUFFIXES
                  and not f.name.lower().startswith("readme"))


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def _tandem(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tandem.cli", *args], capture_output=True,
                          text=True, cwd=_ROOT)


def run(args: argparse.Namespace) -> int:
    files = [Path(t) for t in args.topology] if args.topology else topologies(Path(args.data))
    rows: list[dict[str, Any]] = []
    failed = False
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tandem-check-all-") as tmp:
        for topo in files:
            for seed in _seeds(args.seeds):
                reqs, plan = Path(tmp) / "requests.jsonl", Path(tmp) / "plan.jsonl"
                gen = _tandem("plan", "--topology", str(topo), "--generate", str(args.requests),
                              "--seed", str(seed), "--requests", str(reqs))
                t0 = time.perf_counter()
                pl = _tandem("plan", "--topology", str(topo), "--requests", str(reqs),
                             "--out", str(plan))
                plan_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                ck = _tandem("check", "--topology", str(topo), "--requests", str(reqs),
                             "--plan", str(plan))
                check_s = time.perf_counter() - t0
                row: dict[str, Any] = {"topology": str(topo.relative_to(_ROOT)
                                                       if topo.is_absolute() else topo),
                                       "seed": seed, "requests": args.requests,
                                       "plan_s": round(plan_s, 2), "check_s": round(check_s, 2)}
                if gen.returncode or pl.returncode or ck.returncode not in (0, 1):
                    failed = True
                    row["error"] = (gen.stderr or pl.stderr or ck.stderr).strip()[-2000:]
                    row["violations"] = None
                else:
                    got = re.search(r"^(\d+) violation", ck.stdout, re.M)
                    row["violations"] = int(got.group(1)) if got else 0
                    adm = re.search(r"^admitted\s+(\d+)", pl.stdout, re.M)
                    row["admitted"] = int(adm.group(1)) if adm else 0
                    if ck.returncode == 1:
                        row["rows"] = [ln for ln in ck.stdout.splitlines()
                                       if ln[:6].strip().isdigit()][:50]
                rows.append(row)
                v = "ERROR" if row["violations"] is None else str(row["violations"])
                print(f"{row['topology']:<40}{seed:>5}{row.get('admitted', 0):>10}"
                      f"{row['plan_s']:>9.1f}{row['check_s']:>9.1f}{v:>12}", flush=True)
    total = sum(r["violations"] or 0 for r in rows)
    print(f"\n{'topology':<40}{'seed':>5}{'admitted':>10}{'plan s':>9}{'check s':>9}"
          f"{'violations':>12}")
    for r in rows:
        v = "ERROR" if r["violations"] is None else str(r["violations"])
        print(f"{r['topology']:<40}{r['seed']:>5}{r.get('admitted', 0):>10}{r['plan_s']:>9.1f}"
              f"{r['check_s']:>9.1f}{v:>12}")
    print(f"\n{len(rows)} plans, {total} rule violations (target 0)"
          + ("; some runs FAILED" if failed else ""))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "total_violations": total, "failed": failed,
                               "requests": args.requests, "seeds": _seeds(args.seeds),
                               "load_average_before": load_before,
                               "load_average_after": os.getloadavg(),
                               "cpus": os.cpu_count()}, indent=1))
    print(f"wrote {out}")
    return 1 if failed or total else 0


if __name__ == "__main__":
    raise SystemExit(main())
