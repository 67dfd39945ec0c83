"""Benchmark 3: decision latency with 1,000 active workloads, and reaction time to a failure.

Protocol: load GÉANT (Topology Zoo Geant2012, 40 sites) or any topology file (`--topology
data/generated/waxman-1000.graphml --active 10000` for the 1,000-site WAN), warm the path cache
of every site pair on WANs of at most `--warm-max` sites (built once per topology structure,
as the stream processor does at start-up; on larger WANs the cache fills lazily, pair by pair,
during the fill), admit seeded workloads until `--active` are running, then time `decide()` on `--requests` further requests while keeping
the population steady (each admitted request is applied and the oldest workload released).
Only `decide()` is timed, with `time.perf_counter_ns`, after `gc.freeze()` of the loaded state (as a long-running worker
does; `--no-gc-freeze` measures without it). Bandwidths are scaled down
(`--bw-scale`) and site compute raised (`--site-vcpus`) so that a thousand workloads fit on
GÉANT's 1 Gbps links and 40 sites at all (otherwise most timed requests are quick rejections).

Then the link whose failure touches the number of workloads closest to `--affected` is failed
and `react()` is timed: choosing reroute / migrate / preempt / degraded for every affected
workload and building the make-before-break change set.

    python -m tandem.bench.latency          # or: tandem bench latency
"""

from __future__ import annotations

import argparse
import gc
import os
import json
import statistics
import time
from dataclasses import replace
from collections import Counter
from pathlib import Path
from typing import Any

from tandem.bench.stats import percentile

OUT = Path("bench/out/latency.json")


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--topology", default="data/zoo/Geant2012.graphml")
    p.add_argument("--active", type=int, default=1000)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--affected", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bw-scale", type=float, default=0.15,
                   help="bandwidth multiplier of the workload generator")
    p.add_argument("--site-vcpus", type=float, default=2048.0,
                   help="compute per site (memory = 4 GiB per vCPU) so 1,000 workloads fit")
    p.add_argument("--warm-max", type=int, default=100,
                   help="warm every site pair's paths first only up to this many sites")
    p.add_argument("--no-gc-freeze", action="store_true",
                   help="leave the loaded state in the collected generations (see docstring)")
    p.add_argument("--out", default=str(OUT))


def register(sub: Any) -> None:
    p = sub.add_parser("latency", help="decide() p50/p99 with 1,000 active workloads; reaction time")
    add_args(p)
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tandem bench latency", description=__doc__.splitlines()[0])
    add_args(p)
    return run(p.parse_args(argv))



def run(args: argparse.Namespace) -> int:
    from tandem.engine.decide import decide
    from tandem.engine.loaders import load_topology
    from tandem.engine.react import fail_link
    from tandem.engine.state import State
    from tandem.engine.workgen import stream as workload_stream

    from tandem.bench.joint import data_path

    load_before = os.getloadavg()
    t_start = time.perf_counter()
    topo = load_topology(data_path(args.topology))
    topo = replace(topo, sites={sid: replace(site, vcpus=args.site_vcpus,
                                             memory_gib=4 * args.site_vcpus)
                                for sid, site in topo.sites.items()})
    state = State.empty(topo)
    t0 = time.perf_counter()
    if len(topo.sites) <= args.warm_max:
        state.net.warm()
    warm_s = time.perf_counter() - t0
    s = args.bw_scale
    stream = workload_stream(topo, args.seed, net=state.net, bw_low=0.03 * s, bw_high=0.12 * s)
    order: list[str] = []
    rejected_fill = 0
    t_fill = time.perf_counter()
    while len(state.workloads) < args.active:
        d = decide(state, next(stream))
        if d.admitted:
            state = state.apply(d)
            order.append(d.workload_id)
            if len(order) % 1000 == 0:
                print(f"  filled {len(order)} ({time.perf_counter() - t_fill:.0f} s, "
                      f"{rejected_fill} rejected)", flush=True)
        else:
            rejected_fill += 1
    fill_s = time.perf_counter() - t_fill
    times: list[float] = []
    cpu: list[float] = []
    kinds: Counter[str] = Counter()
    gc.collect()
    if not args.no_gc_freeze:
        # A long-running worker freezes its loaded state once (gc.freeze), so the cyclic
        # collector stops re-scanning a thousand long-lived decisions on every collection.
        gc.freeze()
    for _ in range(args.requests):
        req = next(stream)
        t, c = time.perf_counter_ns(), time.thread_time_ns()
        d = decide(state, req)
        times.append((time.perf_counter_ns() - t) / 1e6)
        cpu.append((time.thread_time_ns() - c) / 1e6)
        kinds[d.kind.value if d.admitted else f"rejected: {d.rejection.constraint}"] += 1  # type: ignore[union-attr]
        if d.admitted:
            state = state.apply(d).release(order.pop(0))
            order.append(d.workload_id)
    util = state.utilisation()
    per_link: Counter[str] = Counter()
    for dec in state.workloads.values():
        for lid in {lid for p in dec.paths for lid in p.links}:
            per_link[lid] += 1
    link = min(per_link, key=lambda lid: (abs(per_link[lid] - args.affected), lid))
    t0 = time.perf_counter()
    reaction = fail_link(state, link)
    react_s = time.perf_counter() - t0
    outcome = Counter(d.kind.value for d in reaction.decisions)
    result: dict[str, Any] = {
        "topology": Path(args.topology).stem, "sites": len(topo.sites), "links": len(topo.links),
        "active_workloads": len(state.workloads), "timed_requests": len(times),
        "path_cache_warm_s": round(warm_s, 3), "fill_s": round(fill_s, 1),
        "start_to_timing_s": round(t_fill - t_start, 3), "gc_freeze": not args.no_gc_freeze,
        "decide_ms": {"p50": percentile(times, 0.5), "p90": percentile(times, 0.9), "p99": percentile(times, 0.99),
                      "max": max(times), "mean": statistics.fmean(times)},
        "decide_cpu_ms": {"p50": percentile(cpu, 0.5), "p90": percentile(cpu, 0.9), "p99": percentile(cpu, 0.99),
                          "max": max(cpu)},
        "load_average_1min": os.getloadavg()[0], "load_average_before": load_before,
        "load_average_after": os.getloadavg(), "cpus": os.cpu_count(),
        "outcomes": dict(kinds), "fill_rejections": rejected_fill,
        "max_link_utilisation": max(util.values()),
        "reaction": {"link": link, "workloads_on_link": per_link[link],
                     "affected": len(reaction.affected), "seconds": react_s,
                     "outcomes": dict(outcome), "change_steps": len(reaction.change_set),
                     "over_reserved_after": len(reaction.state.over_reserved())},
    }
    dm = result["decide_ms"]
    print(f"{'topology':<12}{'active':>8}{'timed':>7}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    print(f"{result['topology']:<12}{result['active_workloads']:>8}{len(times):>7}"
          f"{dm['p50']:>9.3f}{dm['p90']:>9.3f}{dm['p99']:>9.3f}{dm['max']:>9.3f}")
    dc = result["decide_cpu_ms"]
    print(f"{'(thread CPU)':<12}{'':>8}{'':>7}{dc['p50']:>9.3f}{dc['p90']:>9.3f}{dc['p99']:>9.3f}"
          f"{dc['max']:>9.3f}")
    print(f"start-up {result['start_to_timing_s']:.1f} s (path cache warm {warm_s:.1f} s), "
          f"fill to {args.active} active {fill_s:.1f} s ({rejected_fill} rejected)")
    print(f"load average {result['load_average_1min']:.2f} on {result['cpus']} CPUs "
          "(wall-clock includes waiting for a CPU)")
    print(f"decisions: {dict(kinds)}")
    r = result["reaction"]
    print(f"\nreaction to failure of {link} ({r['workloads_on_link']} workloads on it): "
          f"{r['affected']} affected, {r['seconds'] * 1000:.1f} ms, {r['outcomes']}, "
          f"{r['change_steps']} change steps")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
