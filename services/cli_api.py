"""`tandem api --listen HOST:PORT`: run the northbound gRPC server (docs/API.md).

It reads the decider log itself (its own fold, for WhatIf and the read calls) and sends orders
to tandem.requests, so it needs a broker and a running `tandem worker`; it holds no state that
a restart loses. Stops on SIGINT and SIGTERM (a grace second for calls in progress).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("api", help="run the northbound gRPC API server (tandem.v1.Tandem)")
    p.add_argument("--broker", help="Kafka bootstrap host:port (env TANDEM_KAFKA; default "
                                    "127.0.0.1:9092)")
    p.add_argument("--topic-prefix", dest="topic_prefix",
                   help="topic name prefix (env TANDEM_TOPIC_PREFIX)")
    p.add_argument("--listen", default="127.0.0.1:50051",
                   help="address to listen on (default 127.0.0.1:50051; port 0: any free port, "
                        "printed on start)")
    p.set_defaults(func=cmd_api)


def cmd_api(args: argparse.Namespace) -> int:
    import asyncio

    from tandem.cli import UserError
    from tandem.services.cli_worker import _settings

    settings = _settings(args)
    try:
        return asyncio.run(_serve(args.listen, settings.broker, settings.topic_prefix))
    except OSError as exc:
        raise UserError(str(exc)) from None


async def _serve(listen: str, broker: str, prefix: str) -> int:
    import asyncio
    import signal

    from tandem.services.api.server import create_server

    server, port = await create_server(listen, broker, prefix)
    await server.start()
    host = listen.rsplit(":", 1)[0]
    print(f"tandem api: listening on {host}:{port} (broker {broker}, topic prefix "
          f"{prefix!r})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("tandem api: stopping", flush=True)
    await server.stop(1.0)
    return 0
