"""Benchmark 2: the joint engine against decoupled placement+routing, and against the exact MILP.

Protocol (fair by construction): for each scenario, topology, seed and load level, one seeded
request stream (`tandem.engine.workgen`) is offered *in the same order* to every engine, each
folding its own decisions into its own `State` over the *same* infrastructure. Load L means the
stream offers L x (sum of link capacities, one direction) Mbps in total; at L >= 2 every engine
meets full links. Engines (`tandem.engine.baselines` for the decoupled ones):

- joint: `decide()` (beam search over site assignments, each routed on the residual network);
- nova+sp: Nova filter & weigh (RAM weigher: spread), then latency-shortest path;
- nova+cspf: the same placement, then constrained shortest path (CSPF);
- pack+cspf: Nova with a packing RAM weigher (stacks a workload's groups), then CSPF;
- pla+cspf: OSM PLA: the exact assignment of least compute price + inter-site link price
  under the latency bounds (blind to residual bandwidth), then CSPF;
- novalat+cspf: Nova with a latency filter and a latency weigher (low latency to the
  workload's users and already scheduled partners) beside the RAM and CPU weighers, then CSPF;
- milp (small instances only, `--milp`): the exact joint MILP per request.

Joint is compared with the *best* baseline of each row (the one admitting the most Mbps),
whichever it is.

Scenarios (`--dc-shares`, `--users`): `dc=1` every site has compute and users sit at any
site; `dc=0.5` a seeded half of the sites keep compute (the others are user PoPs), users at
any site (about half of them at sites without compute); `dc=0.5 users=non-dc` every user
site is one without compute, so no VM can sit where its users are.

Where the gain comes from (`gain` in each row, for the best baseline): at every request the
best baseline rejects, the joint engine is asked on *the baseline's own state*; if it admits,
the refusal was a placement-first loss (the residual network had room for the workload, the
baseline's placement did not fit it) — split by whether the baseline's placement itself
failed or CSPF failed after it. The rest of the gap is capacity the baseline had already
spent: `mbps_hops_per_mbps` (WAN Mbps x hops reserved per admitted Mbps) says how much link
capacity each engine spends per Mbps admitted, `joint_split_demands` how many joint demands
were split over several paths (which CSPF never does).

    tandem bench joint            # python -m bench.joint
"""

from __future__ import annotations

import argparse
import importlib
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
OUT = Path("bench/out/joint.json")
BASELINES = ("nova+sp", "nova+cspf", "pack+cspf", "pla+cspf", "novalat+cspf")
TARGET = 1.25


def data_path(p: str) -> str:
    """A path as given if it exists, else relative to the repository root."""
    return p if Path(p).exists() or not (REPO / p).exists() else str(REPO / p)


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


def _stream(topo: Any, load: float, seed: int, net: Any, users: str = "all") -> list[Any]:
    """The seeded stream up to `load` x total capacity. With `users="non-dc"` every user
    site is redrawn (seeded) among the active sites without compute."""
    from tandem.engine.topology import SiteState
    from tandem.engine.workgen import generate

    total = sum(net.cap) / 2
    out: list[Any] = []
    offered = 0.0
    batch = generate(topo, max(50, int(load * 400)), seed, net=net)
    if users == "non-dc":
        pops = sorted(s for s, v in topo.sites.items()
                      if v.state is SiteState.ACTIVE and v.vcpus <= 0)
        if not pops:
            raise SystemExit("--users non-dc needs sites without compute (--dc-shares < 1)")
        rng = random.Random(f"users-{seed}")
        batch = [replace(r, demands=tuple(
            replace(d, to_site=rng.choice(pops)) if d.to_site else d for d in r.demands))
            for r in batch]
    for r in batch:
        if offered >= load * total:
            break
        out.append(r)
        offered += r.bandwidth_mbps
    return out


def _mbps_hops(dec: Any) -> float:
    return float(sum(p.bandwidth_mbps * len(p.links) for p in dec.paths))


def run_engine(fn: Callable[..., Any], state: Any, stream: list[Any],
               counterfactual: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Fold `fn`'s decisions on `stream`. With `counterfactual` (the joint engine), every
    rejection is also decided by it on this engine's state, to tell placement-first losses
    (it admits there) from exhausted capacity (it rejects too)."""
    from tandem.check import check_plan
    from tandem.engine.baselines import ROUTING_FAILED

    st = state
    decisions: list[Any] = []
    admitted = 0
    bw = 0.0
    hops = 0.0
    split = 0
    why: Counter[str] = Counter()
    gain: Counter[str] = Counter()
    gain_mbps: Counter[str] = Counter()
    t0 = time.perf_counter()
    cf_s = 0.0
    for req in stream:
        d = fn(st, req)
        decisions.append(d)
        if d.admitted:
            admitted += 1
            bw += req.bandwidth_mbps
            hops += _mbps_hops(d)
            per: Counter[str] = Counter(p.demand_id for p in d.paths)
            split += sum(1 for dm in req.demands if per[dm.demand_id] > (2 if dm.diverse else 1))
            st = st.apply(d)
            continue
        why[d.rejection.constraint] += 1
        if counterfactual is not None:
            stage = "routing" if d.rejection.detail.startswith(ROUTING_FAILED) else "placement"
            c0 = time.perf_counter()
            alt = counterfactual(st, req)
            cf_s += time.perf_counter() - c0
            key = f"{stage}_failed_joint_admits" if alt.admitted else f"{stage}_failed_joint_rejects"
            gain[key] += 1
            gain_mbps[key] += req.bandwidth_mbps
    seconds = time.perf_counter() - t0 - cf_s
    assert not st.over_reserved(), "an engine over-reserved a link"
    # The independent checker (tandem.check) re-derives every rule from the inputs alone.
    bad = check_plan(state.topology, stream, decisions)
    out: dict[str, Any] = {
        "admitted": admitted, "admitted_mbps": round(bw, 1), "rejected": dict(sorted(why.items())),
        "mbps_hops_per_mbps": round(hops / bw, 3) if bw else 0.0, "split_demands": split,
        "violations": len(bad), "seconds": round(seconds, 3)}
    if bad:
        print(f"  !! {len(bad)} rule violations, e.g. {bad[0]}", flush=True)
    if counterfactual is not None:
        out["gain"] = {k: {"requests": gain[k], "mbps": round(gain_mbps[k], 1)}
                       for k in sorted(gain)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tandem bench joint", description=__doc__.splitlines()[0])
    add_args(p)
    return run(p.parse_args(argv))


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--topology", action="append", help="topology file (repeatable)")
    p.add_argument("--loads", default="0.5,1,2,4", help="offered load levels")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--dc-shares", default="1,0.5",
                   help="shares of sites with compute, one scenario each (comma separated)")
    p.add_argument("--dc-share", type=float, default=None,
                   help="one share of sites with compute (overrides --dc-shares)")
    p.add_argument("--users", default="all,non-dc",
                   help="where user sites are drawn: all (any site), non-dc (only sites "
                   "without compute; skipped at dc share 1); comma separated")
    p.add_argument("--baselines", default=",".join(BASELINES),
                   help=f"baselines to run (of {', '.join(BASELINES)})")
    p.add_argument("--no-gain", action="store_true",
                   help="skip the counterfactual joint decisions on the best baseline's state")
    p.add_argument("--milp", action="store_true", help="also compare with the exact MILP")
    p.add_argument("--milp-topology", action="append", help="MILP instance (repeatable)")
    p.add_argument("--milp-load", type=float, default=2.0)
    p.add_argument("--out", default=str(OUT))


def register(sub: Any) -> None:
    p = sub.add_parser("joint", help="joint engine vs decoupled baselines and exact MILP")
    add_args(p)
    p.set_defaults(func=run)


def _engines(names: list[str]) -> dict[str, Callable[..., Any]]:
    from tandem.engine.baselines import (decide_nova_cspf, decide_nova_latency_cspf,
                                         decide_nova_pack_cspf, decide_nova_sp, decide_pla_cspf)
    from tandem.engine.decide import decide

    known: dict[str, Callable[..., Any]] = {
        "nova+sp": decide_nova_sp, "nova+cspf": decide_nova_cspf,
        "pack+cspf": decide_nova_pack_cspf, "pla+cspf": decide_pla_cspf,
        "novalat+cspf": decide_nova_latency_cspf}
    bad = [n for n in names if n not in known]
    if bad:
        raise SystemExit(f"unknown baseline(s) {', '.join(bad)}; known: {', '.join(known)}")
    return {"joint": decide, **{n: known[n] for n in names}}


def _scenarios(args: argparse.Namespace) -> list[tuple[float, str]]:
    shares = ([args.dc_share] if args.dc_share is not None
              else [float(x) for x in args.dc_shares.split(",")])
    users = [u.strip() for u in args.users.split(",")]
    for u in users:
        if u not in ("all", "non-dc"):
            raise SystemExit(f"--users: {u!r} is neither all nor non-dc")
    return [(s, u) for s in shares for u in users if not (u == "non-dc" and s >= 1.0)]


def _label(dc: float, users: str) -> str:
    return f"dc={dc:g}" + (" users=non-dc" if users == "non-dc" else "")


def run(args: argparse.Namespace) -> int:
    from tandem.engine.decide import decide
    from tandem.engine.milp import decide_milp
    from tandem.engine.state import State

    loads = [float(x) for x in args.loads.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    engines = _engines([b.strip() for b in args.baselines.split(",") if b.strip()])
    names = [n for n in engines if n != "joint"]
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for dc, users in _scenarios(args):
        for path in args.topology or DEFAULT_TOPOLOGIES:
            for seed in seeds:
                topo = _infra(path, dc, seed)
                base = State.empty(topo)
                for load in loads:
                    stream = _stream(topo, load, seed, base.net, users)
                    res = {n: run_engine(fn, base, stream) for n, fn in engines.items()}
                    best = max(names, key=lambda n: (res[n]["admitted_mbps"], -names.index(n)))
                    if not args.no_gain:  # again, with the counterfactual joint decisions
                        res[best] = run_engine(engines[best], base, stream, decide)
                    j = res["joint"]["admitted_mbps"]
                    row = {"scenario": _label(dc, users), "dc_share": dc, "users": users,
                           "topology": Path(path).stem, "load": load, "seed": seed,
                           "requests": len(stream),
                           "offered_mbps": round(sum(r.bandwidth_mbps for r in stream), 1),
                           "engines": res, "best_baseline": best,
                           "joint_over_best": j / max(res[best]["admitted_mbps"], 1e-9),
                           **{f"joint_over_{n}": j / max(res[n]["admitted_mbps"], 1e-9)
                              for n in names}}
                    rows.append(row)
                    print(f"{row['scenario']:<20}{row['topology']:<11}L={load:<4g}s={seed} "
                          f"joint {j:>9.0f}  best {best} {res[best]['admitted_mbps']:>9.0f}  "
                          f"x{row['joint_over_best']:.2f}", flush=True)
    summary = _summary(rows, max(loads), names)
    _print_table(rows, names, max(loads))
    _print_summary(summary)
    milp_rows: list[dict[str, Any]] = []
    if args.milp:
        dc0 = _scenarios(args)[0][0]
        print(f"\nexact joint MILP, load {args.milp_load:g}, dc share {dc0:g}:")
        print(f"{'topology':<14}{'seed':>5}{'req':>5}{'joint Mbps':>12}{'milp Mbps':>12}"
              f"{'ratio':>7}{'joint s':>9}{'milp s':>9}")
        for path in args.milp_topology or MILP_TOPOLOGIES:
            for seed in seeds:
                topo = _infra(path, dc0, seed)
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
    summary["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "milp": milp_rows, "summary": summary,
                               "args": {k: v for k, v in vars(args).items() if k != "func"}},
                              indent=1))
    print(f"wrote {out}")
    return 0


def _summary(rows: list[dict[str, Any]], high: float, names: list[str]) -> dict[str, Any]:
    """Per scenario and topology at the highest load: joint ÷ best baseline (median, min),
    which baselines were best, joint ÷ each baseline, and the gain decomposition summed."""
    out: dict[str, Any] = {"high_load": high, "target_joint_over_best": TARGET, "cases": {}}
    hi_all = [r for r in rows if r["load"] == high]
    for scen in dict.fromkeys(r["scenario"] for r in rows):
        for topo in dict.fromkeys(r["topology"] for r in rows if r["scenario"] == scen):
            hi = [r for r in hi_all if r["scenario"] == scen and r["topology"] == topo]
            if not hi:
                continue
            gain: Counter[str] = Counter()
            gain_mbps: Counter[str] = Counter()
            for r in hi:
                for k, v in r["engines"][r["best_baseline"]].get("gain", {}).items():
                    gain[k] += v["requests"]
                    gain_mbps[k] += v["mbps"]
            out["cases"][f"{scen} {topo}"] = {
                "median_joint_over_best": statistics.median(r["joint_over_best"] for r in hi),
                "min_joint_over_best": min(r["joint_over_best"] for r in hi),
                "best_baselines": dict(Counter(r["best_baseline"] for r in hi)),
                **{f"median_joint_over_{n}": statistics.median(r[f"joint_over_{n}"] for r in hi)
                   for n in names},
                "joint_mbps_hops_per_mbps": statistics.median(
                    r["engines"]["joint"]["mbps_hops_per_mbps"] for r in hi),
                "best_mbps_hops_per_mbps": statistics.median(
                    r["engines"][r["best_baseline"]]["mbps_hops_per_mbps"] for r in hi),
                "joint_split_demands": sum(r["engines"]["joint"]["split_demands"] for r in hi),
                "best_rejections": {k: {"requests": gain[k], "mbps": round(gain_mbps[k], 1)}
                                    for k in sorted(gain)},
            }
    out["violations"] = {n: sum(r["engines"][n]["violations"] for r in rows)
                         for n in ["joint", *names]}
    if hi_all:
        ratios = [r["joint_over_best"] for r in hi_all]
        out["overall"] = {"min_joint_over_best": min(ratios),
                          "median_joint_over_best": statistics.median(ratios),
                          "rows_meeting_target": sum(x >= TARGET for x in ratios),
                          "rows": len(ratios)}
    return out


def _print_table(rows: list[dict[str, Any]], names: list[str], high: float) -> None:
    head = ["scenario", "topology", "load", "seed", "offered"] + ["joint"] + names + [
        "best", "joint/best"]
    body = [[r["scenario"], r["topology"], f"{r['load']:g}", str(r["seed"]),
             f"{r['offered_mbps']:.0f}"]
            + [f"{r['engines'][n]['admitted_mbps']:.0f}" for n in ["joint", *names]]
            + [r["best_baseline"], f"{r['joint_over_best']:.2f}"] for r in rows]
    title = "admitted Mbps per engine; joint ÷ the best baseline of each row"
    try:  # rich when installed (not a dependency of the project), plain text otherwise
        console: Any = importlib.import_module("rich.console")
        table: Any = importlib.import_module("rich.table")
    except ImportError:
        widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
        print(f"\n{title}")
        print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
        for b in body:
            print("  ".join(c.rjust(w) for c, w in zip(b, widths)))
        return
    t = table.Table(title=title)
    for h in head:
        t.add_column(h, justify="left" if h in ("scenario", "topology", "best") else "right")
    for r, b in zip(rows, body):
        t.add_row(*b, style="bold" if r["load"] == high else None)
    console.Console().print(t)


def _print_summary(summary: dict[str, Any]) -> None:
    print(f"\nat load {summary['high_load']:g} (target joint ÷ best baseline ≥ {TARGET}):")
    for case, v in summary["cases"].items():
        rej = v["best_rejections"]
        lost = (f"{sum(x['mbps'] for k, x in rej.items() if k.endswith('joint_admits')):.0f} Mbps"
                if rej else "not measured (--no-gain)")
        print(f"  {case:<34} median x{v['median_joint_over_best']:.2f}  "
              f"min x{v['min_joint_over_best']:.2f}  best {v['best_baselines']}  "
              f"Mbps-hops/Mbps joint {v['joint_mbps_hops_per_mbps']:.2f} vs "
              f"{v['best_mbps_hops_per_mbps']:.2f}; placement-first losses {lost}")
    if "overall" in summary:
        o = summary["overall"]
        print(f"  overall: min x{o['min_joint_over_best']:.2f}, median "
              f"x{o['median_joint_over_best']:.2f}, {o['rows_meeting_target']}/{o['rows']} "
              f"rows ≥ {TARGET}")
    print(f"  rule violations found by tandem check (all rows): {summary['violations']}")
    print("summary:", json.dumps(summary))


if __name__ == "__main__":
    raise SystemExit(main())
