"""Benchmark 1: the engine's TE solver against the HiGHS interior-point LP optimum.

Protocol of the WAN TE literature (NCFlow, POP, Teal), on any topology file:
- capacity 1000 per direction where the file gives none (loader default);
- gravity traffic matrices (`tandem.engine.traffic`), scale factors 1, 16, 64, seeds 0–4;
  scale σ means total demand σ·S, S the largest gravity total that fits on shortest paths;
- 4 link-disjoint shortest paths per pair (latency, which is hop count on files without
  coordinates), computed once per topology and shared by both solvers;
- per instance, the engine (`tandem.engine.te.solve_te`) and then the LP
  (`tandem.engine.lp.solve_lp`, `linprog(method="highs-ipm")`) run back-to-back in this
  process on the same `FlowProblem`; each time covers that solver's own matrix assembly and
  solve (not the shared path computation). Both results are checked for feasibility.

Reported: engine total / LP optimum, both times, speed-up = LP time / engine time; summary per
topology: median and 10th percentile of the ratio, speed-up at scale 16. JSON to
bench/out/te.json.

    python -m tandem.bench.te            # or: tandem bench te [--topology FILE ...]
"""

from __future__ import annotations

import os

# Pin BLAS to one thread before numpy loads (when it has not yet): on a shared 2-core
# machine OpenBLAS' spinning worker threads only steal time from both solvers.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TOPOLOGIES = (str(_ROOT / "data/zoo/GtsCe.graphml"), str(_ROOT / "data/zoo/Colt.graphml"))
DEFAULT_OUT = _ROOT / "bench/out/te.json"
TARGET_MEDIAN = 0.995
TARGET_P10 = 0.97
TARGET_SPEEDUP = 10.0
FEASIBILITY_TOL = 1e-6  # relative to the largest capacity/volume


def _int_list(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        elif part:
            out.append(int(part))
    return out


def _float_list(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.array(values), q)) if values else float("nan")


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--topology", action="append", metavar="FILE",
                   help="topology file (GraphML, SNDlib, node-link JSON); repeatable; "
                        "default: GtsCe and Colt")
    p.add_argument("--scales", default="1,16,64", help="scale factors (default 1,16,64)")
    p.add_argument("--seeds", default="0-4", help="seeds, e.g. 0-4 or 0,2 (default 0-4)")
    p.add_argument("--paths", type=int, default=4, help="disjoint paths per pair (default 4)")
    p.add_argument("--weight", choices=("latency", "hops"), default="latency")
    p.add_argument("--lp-method", default="highs-ipm", help="linprog method (default highs-ipm)")
    p.add_argument("--paths-only", action="store_true",
                   help="only build and time each topology's path set (no TE, no LP)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="JSON output file")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("te", help="TE engine vs HiGHS IPM LP optimum (NCFlow protocol)")
    add_args(p)
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from tandem.cli import UserError
    from tandem.engine.loaders import TopologyFileError, load_topology
    from tandem.engine.lp import solve_lp
    from tandem.engine.mcf import FlowProblem
    from tandem.engine.paths import PathFinder, PathSet
    from tandem.engine.te import solve_te
    from tandem.engine.traffic import gravity_demands

    try:
        scales = _float_list(args.scales)
        seeds = _int_list(args.seeds)
    except ValueError as exc:
        raise UserError(f"--scales/--seeds: {exc}") from None
    if args.paths < 1:
        raise UserError("--paths must be at least 1")
    files = args.topology or list(DEFAULT_TOPOLOGIES)
    topologies = []
    for path in files:  # read every file first: a bad one fails before any work
        try:
            topologies.append((path, load_topology(path)))
        except TopologyFileError as exc:
            raise UserError(str(exc)) from None
    rows: list[dict[str, Any]] = []
    path_sets: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    header = (f"{'topology':<12} {'scale':>5} {'seed':>4} {'pairs':>6} {'paths':>6} "
              f"{'ratio':>7} {'engine s':>9} {'LP s':>8} {'speed-up':>8} {'cpu x':>7}")
    print(header)
    print("-" * len(header))
    for path, topo in topologies:
        name = Path(path).stem
        t0 = time.perf_counter()
        finder = PathFinder(topo, args.weight)
        all_paths = finder.all_pairs_edge_disjoint(args.paths)
        path_seconds = time.perf_counter() - t0
        n_paths = sum(len(ps) for ps in all_paths.values()) if not isinstance(
            all_paths, PathSet) else all_paths.n_paths
        print(f"{name}: path set of {len(all_paths)} pairs, {n_paths} paths in "
              f"{path_seconds:.1f} s (load {os.getloadavg()[0]:.2f})", flush=True)
        path_sets.append({"topology": name, "sites": len(topo.sites), "pairs": len(all_paths),
                          "paths": n_paths, "seconds": path_seconds,
                          "loadavg": os.getloadavg()})
        if args.paths_only:
            continue
        first = (all_paths.first_arcs() if isinstance(all_paths, PathSet)
                 else {pair: ps[0].arcs() for pair, ps in all_paths.items() if ps})
        for scale in scales:
            for seed in seeds:
                demands = gravity_demands(topo, scale, seed, first)
                problem = FlowProblem.build(topo, demands, all_paths)
                cpu0 = time.process_time()
                eng = solve_te(problem)
                eng_cpu = time.process_time() - cpu0
                cpu0 = time.process_time()
                lp = solve_lp(problem, method=args.lp_method)
                lp_cpu = time.process_time() - cpu0
                scale_ref = max(float(problem.capacity.max(initial=0.0)),
                                float(problem.volume.max(initial=0.0)), 1.0)
                v_eng, v_lp = problem.violation(eng.flow), problem.violation(lp.flow)
                ratio = eng.total / lp.total if lp.total > 0 else 1.0
                row = {
                    "topology": name, "file": str(path), "scale": scale, "seed": seed,
                    "sites": len(topo.sites), "links": len(topo.links),
                    "demands": len(demands), "paths": problem.n_paths,
                    "total_demand": float(problem.volume.sum()),
                    "engine_total": eng.total, "lp_total": lp.total, "ratio": ratio,
                    "engine_seconds": eng.seconds, "lp_seconds": lp.seconds,
                    "engine_cpu_seconds": eng_cpu, "lp_cpu_seconds": lp_cpu,
                    "speedup": lp.seconds / eng.seconds if eng.seconds > 0 else float("inf"),
                    "cpu_speedup": lp_cpu / eng_cpu if eng_cpu > 0 else float("inf"),
                    "engine_bound": eng.bound,
                    "engine_violation": v_eng, "lp_violation": v_lp,
                    "engine_feasible": v_eng <= FEASIBILITY_TOL * scale_ref,
                    "path_seconds": path_seconds,
                }
                rows.append(row)
                flag = "" if row["engine_feasible"] else "  INFEASIBLE"
                print(f"{name:<12} {scale:>5g} {seed:>4} {len(demands):>6} "
                      f"{problem.n_paths:>6} {ratio:>7.4f} {eng.seconds:>9.3f} "
                      f"{lp.seconds:>8.3f} {row['speedup']:>7.1f}x "
                      f"{row['cpu_speedup']:>6.1f}x{flag}", flush=True)
    summary = _summary(rows)
    _print_summary(summary)
    out = {
        "protocol": {
            "scales": scales, "seeds": seeds, "paths": args.paths, "weight": args.weight,
            "lp_method": args.lp_method,
            "scale_definition": "total demand = scale x largest gravity total that fits "
                                "on shortest paths",
            "capacity_default": 1000.0,
        },
        "environment": {
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "cpus": os.cpu_count(),
            "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", ""),
            "python": sys.version.split()[0],
        },
        "summary": summary,
        "path_sets": path_sets,
        "rows": rows,
    }
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=2))
    print(f"\nwrote {out_path}")
    return 0 if all(r["engine_feasible"] for r in rows) else 1


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["topology"] for r in rows):
        mine = [r for r in rows if r["topology"] == name]
        ratios = [r["ratio"] for r in mine]
        at16 = [r["speedup"] for r in mine if r["scale"] == 16]
        out[name] = {
            "instances": len(mine),
            "ratio_median": statistics.median(ratios),
            "ratio_p10": _percentile(ratios, 10),
            "ratio_min": min(ratios),
            "speedup_scale16_median": statistics.median(at16) if at16 else None,
            "speedup_scale16_min": min(at16) if at16 else None,
            "cpu_speedup_scale16_median":
                statistics.median([r["cpu_speedup"] for r in mine if r["scale"] == 16])
                if at16 else None,
            "engine_seconds_scale16_median":
                statistics.median([r["engine_seconds"] for r in mine if r["scale"] == 16])
                if at16 else None,
            "lp_seconds_scale16_median":
                statistics.median([r["lp_seconds"] for r in mine if r["scale"] == 16])
                if at16 else None,
            "all_feasible": all(r["engine_feasible"] for r in mine),
            "max_engine_violation": max(r["engine_violation"] for r in mine),
            "targets": {
                "median>=0.995": statistics.median(ratios) >= TARGET_MEDIAN,
                "p10>=0.97": _percentile(ratios, 10) >= TARGET_P10,
                "speedup16>=10 (median)": (statistics.median(at16) >= TARGET_SPEEDUP)
                if at16 else None,
            },
        }
    return out


def _print_summary(summary: dict[str, Any]) -> None:
    print()
    print("(issue 3 sets the targets for GtsCe and Colt; other topologies are shown for "
          "reference)")
    print(f"{'topology':<12} {'n':>3} {'median':>7} {'p10':>7} {'min':>7} "
          f"{'x@16 med':>9} {'x@16 min':>9} {'cpu x@16':>9} {'feasible':>8}")
    for name, s in summary.items():
        med16 = s["speedup_scale16_median"]
        min16 = s["speedup_scale16_min"]
        cpu16 = s["cpu_speedup_scale16_median"]
        print(f"{name:<12} {s['instances']:>3} {s['ratio_median']:>7.4f} {s['ratio_p10']:>7.4f} "
              f"{s['ratio_min']:>7.4f} "
              f"{(f'{med16:.1f}x' if med16 is not None else '-'):>9} "
              f"{(f'{min16:.1f}x' if min16 is not None else '-'):>9} "
              f"{(f'{cpu16:.1f}x' if cpu16 is not None else '-'):>9} "
              f"{'yes' if s['all_feasible'] else 'NO':>8}")
        t = s["targets"]
        print(f"{'':<12} targets: median>=0.995 {'met' if t['median>=0.995'] else 'MISSED'}, "
              f"p10>=0.97 {'met' if t['p10>=0.97'] else 'MISSED'}, speed-up@16>=10x "
              f"{'-' if t['speedup16>=10 (median)'] is None else ('met' if t['speedup16>=10 (median)'] else 'MISSED')}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tandem.bench.te", description=__doc__)
    add_args(p)
    args = p.parse_args(argv)
    from tandem.cli import UserError

    try:
        return handler(args)
    except UserError as exc:
        print(f"tandem: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
