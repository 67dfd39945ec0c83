"""`tandem sdn --site X`: run one site's SDN control unit (os-ken + Kafka, one process).

The unit listens for its site's OpenFlow 1.3 switches on 127.0.0.1:--of-port, consumes
`tandem.sdn.commands.<site>` (replayed from offset 0 at start), acknowledges on
`tandem.sdn.acks`, and publishes port counters, port status and LLDP observations.
When an emulated WAN is up (`tandem infra wan up`) the OpenFlow port and the declared links
default to what its state file says for the site.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from tandem.cli import UserError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("sdn", help="run one site's SDN control unit", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--site", required=True, help="site id (its command topic is consumed)")
    p.add_argument("--broker", default=None, help="Kafka bootstrap (default: settings/env)")
    p.add_argument("--of-port", type=int, default=None,
                   help="OpenFlow listen port (default: the emulated WAN's, else 6653)")
    p.add_argument("--prefix", default=None, help="topic name prefix (default: env)")
    p.add_argument("--stats-interval", type=float, default=5.0, help="port stats period (s)")
    p.add_argument("--lldp-interval", type=float, default=2.0, help="LLDP period (s)")
    p.add_argument("--reconcile-interval", type=float, default=30.0,
                   help="periodic reconciliation (s)")
    p.add_argument("--wan-state", default=None,
                   help="emulated WAN state file (default .local/wan/state.json if present)")
    p.add_argument("--pidfile", default=None, help="write our PID here (removed on exit)")
    p.set_defaults(func=cmd_sdn)


def cmd_sdn(args: argparse.Namespace) -> int:
    from tandem.sdn.paths import WanLayout
    from tandem.sdn.process import serve
    from tandem.sdn.unit import UnitConfig
    from tandem.services.cli_wan import STATE_FILE, load_state
    from tandem.streams.settings import Settings
    from tandem.streams.topics import sdn_commands_topic

    try:
        sdn_commands_topic(args.site)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    settings = Settings.from_env()
    broker = args.broker or settings.broker
    prefix = settings.topic_prefix if args.prefix is None else args.prefix
    state_path = Path(args.wan_state) if args.wan_state else STATE_FILE
    layout = None
    of_port = args.of_port
    if state_path.exists():
        state = load_state(state_path)
        site = state["layout"]["sites"].get(args.site)
        if site is None and args.wan_state:
            raise UserError(f"{state_path}: no site {args.site!r} in the emulated WAN")
        if site is not None:
            layout = WanLayout.from_json(state["layout"])
            of_port = of_port or int(site["of_port"])
    elif args.wan_state:
        raise UserError(f"{state_path}: no such file")
    of_port = of_port or 6653
    if not 0 < of_port < 65536:
        raise UserError(f"--of-port {of_port} is not a TCP port")
    cfg = UnitConfig(args.site, stats_interval=args.stats_interval,
                     lldp_interval=args.lldp_interval, reconcile_interval=args.reconcile_interval)
    if args.pidfile:
        Path(args.pidfile).parent.mkdir(parents=True, exist_ok=True)
        Path(args.pidfile).write_text(f"{os.getpid()}\n")
    from tandem.services.kafka_admin import BrokerUnavailable

    try:
        rc = serve(args.site, broker, of_port, prefix, cfg, layout)
    except (OSError, BrokerUnavailable) as exc:
        raise UserError(f"control unit of {args.site}: {exc}") from None
    finally:
        if args.pidfile:
            Path(args.pidfile).unlink(missing_ok=True)
    # Kafka is flushed and closed by now; os-ken has no clean way to stop its threads (its
    # native hub cannot kill them), so leave without waiting for them.
    logging.shutdown()
    os._exit(rc)
