"""Benchmark 2: the joint engine against decoupled placement+routing, and against the exact MILP.

Protocol (fair by construction): for each topology, seed and load level, one seeded request
stream (`tandem.engine.workgen`) is offered *in the same order* to every engine, each folding
its own decisions into its own `State` over the *same* infrastructure. Load L means the stream
offers L x (sum of link capacities, one direction) Mbps in total; at L >= 2 every engine meets
full links. Engines:

- joint: `decide()` (beam search over site assignments, each routed on the residual network);
- nova+sp: Nova-style filter & weigh placement, then latency-shortest path;
- nova+cspf: the same placement, then constrained shortest path;
- pack+cspf: Nova with a packing weigher (stacks groups), then CSPF — an extra, stronger
  decoupled baseline, not one the issue asks for;
- milp (small instances only): the exact joint MILP per request, same objective and paths.

`--dc-share 0.5` keeps compute on a seeded half of the sites only (the others are user PoPs),
which removes the easy answer of placing every VM where its users are.

    python -m tandem.bench.joint            # or: tandem bench joint
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

# Relative to the repository root (the working directory is tried first).
DEFAULT_TOPOLOGIES = ("data/b4/B4.json", "data/zoo/Abilene.graphml", "data/zoo/Geant2012.graphml")
MILP_TOPOLOGIES = ("data/b4/B4.json", "data/zoo/Abilene.graphml", "data/sndlib/geant.txt")
REPO = Path(__file__).resolve().parents[1]


def data_path(p: str) -> str:
    """A path as given if it exists, else relative to the repository root."""
    return p if Path(p).exists() or not (REPO / p).exists() else str(REPO / p)
OUT = Path("bench/out/joint.json")


def _infra(path: str, dc_share: float, seed: int) -> Any:
    from tandem.engine.loaders import load_topology

    topo = load_topology(data_path(path))
    if dc_share >= 1.0:
        return topo
    ids = sorted(topo.sites)
    keep = set(random.Random(f"dc-{seed}").sample(ids, max(1, round(dc_share * len(ids)))))
    for sid in ids:
        if sid not in keep:
            topo = topo.with_site(replace(topo.sites[sid], vcpus=0.0, memory_gib=0.0,
                                          storage_gib=0.0))
    return topo


def _stream(topo: Any, load: float, seed: int, net: Any) -> list[Any]:
    from tandem.engine.workgen import generate

    total = sum(net.cap) / 2
    out: list[Any] = []
    offered = 0.0
    batch = generate(topo, max(50, int(load * 400)), seed, net=net)
    for r in batch:
        if offered >= load * total:
            break
        out.append(r)
        offered += r.bandwidth_mbps
    return out


def run_engine(fn: Callable[..., Any], state: Any, stream: list[Any]) -> dict[str, Any]:
    st = state
    admitted = 0
    bw = 0.0
    why: Counter[str] = Counter()
    t0 = time.perf_counter()
    for req in stream:
        d = fn(st, req)
        if d.admitted:
            admitted += 1
            bw += req.bandwidth_mbps
            st = st.apply(d)
        else:
            why[d.rejection.constraint] += 1
    assert not st.over_reserved(), "an engine over-reserved a link"
    return {"admitted": admitted, "admitted_mbps": round(bw, 1), "rejected": dict(sorted(why.items())),
            "seconds": round(time.perf_counter() - t0, 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tandem bench joint", description=__doc__.splitlines()[0])
    add_args(p)
    return run(p.parse_args(argv))


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--topology", action="append", help="topology file (repeatable)")
    p.add_argument("--loads", default="0.5,1,2,4", help="offered load levels")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--dc-share", type=float, default=1.0, help="share of sites with compute")
    p.add_argument("--milp", action="store_true", help="also compare with the exact MILP")
    p.add_argument("--milp-topology", action="append", help="MILP instance (repeatable)")
    p.add_argument("--milp-load", type=float, default=2.0)
    p.add_argument("--out", default=str(OUT))


def register(sub: Any) -> None:
    p = sub.add_parser("joint", help="joint engine vs decoupled baselines and exact MILP")
    add_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tandem.engine.baselines import decide_nova_cspf, decide_nova_pack_cspf, decide_nova_sp
    from tandem.engine.decide import decide
    from tandem.engine.milp import decide_milp
    from tandem.engine.state import State

    loads = [float(x) for x in args.loads.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    engines: dict[str, Callable[..., Any]] = {
        "joint": decide, "nova+sp": decide_nova_sp, "nova+cspf": decide_nova_cspf,
        "pack+cspf": decide_nova_pack_cspf}
    rows: list[dict[str, Any]] = []
    print(f"{'topology':<14}{'load':>5}{'seed':>5}{'offered':>10}  "
          + "".join(f"{n + ' wl/Mbps':>22}" for n in engines)
          + f"{'j/sp':>7}{'j/cspf':>7}{'j/pack':>7}")
    for path in args.topology or DEFAULT_TOPOLOGIES:
        for seed in seeds:
            topo = _infra(path, args.dc_share, seed)
            base = State.empty(topo)
            for load in loads:
                stream = _stream(topo, load, seed, base.net)
                res = {n: run_engine(fn, base, stream) for n, fn in engines.items()}
                j = res["joint"]["admitted_mbps"]
                row = {"topology": Path(path).stem, "load": load, "seed": seed,
                       "dc_share": args.dc_share, "requests": len(stream),
                       "offered_mbps": round(sum(r.bandwidth_mbps for r in stream), 1),
                       "engines": res,
                       "joint_over_sp": j / max(res["nova+sp"]["admitted_mbps"], 1e-9),
                       "joint_over_cspf": j / max(res["nova+cspf"]["admitted_mbps"], 1e-9),
                       "joint_over_pack_cspf": j / max(res["pack+cspf"]["admitted_mbps"], 1e-9)}
                rows.append(row)
                print(f"{row['topology']:<14}{load:>5g}{seed:>5}{row['offered_mbps']:>10.0f}  "
                      + "".join(f"{r['admitted']:>10}/{r['admitted_mbps']:>11.0f}" for r in res.values())
                      + f"{row['joint_over_sp']:>7.2f}{row['joint_over_cspf']:>7.2f}"
                      + f"{row['joint_over_pack_cspf']:>7.2f}")
    summary = _summary(rows, max(loads))
    milp_rows: list[dict[str, Any]] = []
    if args.milp:
        print(f"\nexact joint MILP, load {args.milp_load:g}:")
        print(f"{'topology':<14}{'seed':>5}{'req':>5}{'joint Mbps':>12}{'milp Mbps':>12}"
              f"{'ratio':>7}{'joint s':>9}{'milp s':>9}")
        for path in args.milp_topology or MILP_TOPOLOGIES:
            for seed in seeds:
                topo = _infra(path, args.dc_share, seed)
                base = State.empty(topo)
                stream = _stream(topo, args.milp_load, seed, base.net)
                rj = run_engine(decide, base, stream)
                rm = run_engine(decide_milp, base, stream)
                ratio = rj["admitted_mbps"] / max(rm["admitted_mbps"], 1e-9)
                milp_rows.append({"topology": Path(path).stem, "seed": seed, "requests": len(stream),
                                  "joint": rj, "milp": rm, "ratio": ratio})
                print(f"{Path(path).stem:<14}{seed:>5}{len(stream):>5}{rj['admitted_mbps']:>12.0f}"
                      f"{rm['admitted_mbps']:>12.0f}{ratio:>7.3f}{rj['seconds']:>9.2f}{rm['seconds']:>9.2f}")
        summary["min_joint_over_milp"] = min(r["ratio"] for r in milp_rows)
    print("\nsummary:", json.dumps(summary))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "milp": milp_rows, "summary": summary,
                               "args": {k: v for k, v in vars(args).items() if k != "func"}},
                              indent=1))
    print(f"wrote {out}")
    return 0


def _summary(rows: list[dict[str, Any]], high: float) -> dict[str, Any]:
    out: dict[str, Any] = {"high_load": high}
    for topo in sorted({r["topology"] for r in rows}):
        hi = [r for r in rows if r["topology"] == topo and r["load"] == high]
        out[topo] = {
            "median_joint_over_sp": statistics.median(r["joint_over_sp"] for r in hi),
            "median_joint_over_cspf": statistics.median(r["joint_over_cspf"] for r in hi),
            "median_joint_over_pack_cspf": statistics.median(r["joint_over_pack_cspf"] for r in hi),
            "min_joint_over_best_baseline": min(min(r["joint_over_sp"], r["joint_over_cspf"])
                                                for r in hi),
            "min_joint_over_pack_cspf": min(r["joint_over_pack_cspf"] for r in hi),
        }
    return out


if __name__ == "__main__":
    raise SystemExit(main())
