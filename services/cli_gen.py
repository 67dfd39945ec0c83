"""`tandem gen-topology`: write a seeded synthetic WAN as Topology Zoo-style GraphML.

    tandem gen-topology --sites 1000 --seed 1 --out data/generated/waxman-1000.graphml

The generator (`tandem.engine.topogen`, pure) returns a `Topology`; this command writes it
(`graphml_write`), reads the file back with `load_topology` and refuses to finish unless the
two are equal, so a written file always means what the generator built. It prints the
figures that say whether the result looks like a WAN (sites, links, average degree,
countries, capacity mix, link latencies) and the time taken.
"""

from __future__ import annotations

import argparse
import time
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("gen-topology", help="generate a seeded synthetic WAN (GraphML)")
    p.add_argument("--sites", type=int, default=1000, help="number of sites (default 1000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--out", required=True, help="GraphML file to write")
    p.add_argument("--avg-degree", type=float, default=3.0, help="target average degree (3)")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="Waxman alpha: link probability ∝ exp(-d/(alpha·L)) (0.05)")
    p.add_argument("--spread", type=float, default=1.0,
                   help="std. deviation of a site around its metro, degrees (1.0)")
    p.add_argument("--unknown-countries", type=int, default=0, metavar="K",
                   help="leave the country of K random sites unknown (default 0)")
    p.add_argument("--allow-bridges", action="store_true",
                   help="skip the repair that leaves no single link whose loss splits the WAN")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from tandem.cli import UserError
    from tandem.engine.loaders import TopologyFileError, load_topology
    from tandem.engine.topogen import generate_topology, stats
    from tandem.services.graphml_write import write_graphml

    if args.sites < 2:
        raise UserError(f"--sites: a WAN needs at least 2 sites, got {args.sites}")
    if not 0 <= args.unknown_countries <= args.sites:
        raise UserError(f"--unknown-countries: expected 0..{args.sites}, got "
                        f"{args.unknown_countries}")
    if not args.avg_degree > 0 or not args.alpha > 0 or args.spread < 0:
        raise UserError("--avg-degree and --alpha must be > 0, --spread >= 0")
    t0 = time.perf_counter()
    topo = generate_topology(args.sites, args.seed, avg_degree=args.avg_degree, alpha=args.alpha,
                             spread_deg=args.spread, unknown_countries=args.unknown_countries,
                             two_edge_connected=not args.allow_bridges)
    t_gen = time.perf_counter() - t0
    try:
        write_graphml(topo, args.out)
    except OSError as exc:
        raise UserError(f"{args.out}: cannot write: {exc.strerror or exc}") from None
    t1 = time.perf_counter()
    try:
        back = load_topology(args.out)
    except TopologyFileError as exc:  # would be a bug of the writer: say so plainly
        raise UserError(f"the written file does not load: {exc}") from None
    t_load = time.perf_counter() - t1
    if back != topo:
        raise UserError(f"{args.out}: reading the file back gives a different topology "
                        "(a bug of graphml_write or the loader)")
    st = stats(topo)
    print(f"wrote {args.out}: {topo.name}")
    for key in ("sites", "links", "avg_degree", "countries", "unknown_country_sites",
                "median_link_latency_ms", "max_link_latency_ms", "gbps_1", "gbps_10",
                "gbps_100"):
        value = st[key]
        text = f"{value:.3f}" if key in ("avg_degree",) or "latency" in key else f"{value:.0f}"
        print(f"  {key:<26}{text:>12}")
    print(f"  {'connected':<26}{'yes' if st['is_connected'] else 'NO':>12}")
    print(f"  {'generation (s)':<26}{t_gen:>12.2f}")
    print(f"  {'read back (s)':<26}{t_load:>12.2f}")
    return 0
