"""`tandem api --listen HOST:PORT`: run the northbound gRPC server (docs/API.md).

It reads the decider log itself (its own fold, for WhatIf and the read calls) and sends orders
to tandem.requests, so it needs a broker and a running `tandem worker`; it holds no state that
a restart loses. Stops on SIGINT and SIGTERM (a grace second for calls in progress).

Security (docs/API.md): `--tls-cert/--tls-key` serve TLS, `--client-ca` makes it mutual (every
client presents a certificate signed by that CA); `--tokens FILE` requires a bearer token per
call and isolates tenants. Without a token file the server runs open and says so in its log.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("api", help="run the northbound gRPC API server (tandem.v1.Tandem)")
    p.add_argument("--broker", help="Kafka bootstrap host:port (env TANDEM_KAFKA; default "
                                    "127.0.0.1:9092)")
    p.add_argument("--topic-prefix", dest="topic_prefix",
                   help="topic name prefix (env TANDEM_TOPIC_PREFIX)")
    p.add_argument("--listen", default="127.0.0.1:50051",
                   help="address to listen on (default 127.0.0.1:50051; port 0: any free port, "
                        "printed on start)")
    p.add_argument("--tls-cert", help="PEM certificate chain: serve TLS (with --tls-key)")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--client-ca", help="PEM CA: mutual TLS, clients must present a certificate "
                                       "it signed")
    p.add_argument("--tokens", help="token file (TOKEN tenant=NAME | role=noc | role=operator "
                                    "| role=approver): bearer tokens required, tenants "
                                    "isolated")
    p.add_argument("--require-approval", action="append", default=[], metavar="TENANT[:S]",
                   help="this tenant's orders are held for an approval (Approve/Reject), for "
                        "S seconds (default 900); repeatable")
    p.add_argument("--approval-webhook", metavar="URL",
                   help="POST every approval event (held, approved, rejected, expired) to URL "
                        "as JSON")
    p.add_argument("--approval-webhook-token", default="",
                   help="bearer token sent to the webhook (env TANDEM_APPROVAL_WEBHOOK_TOKEN)")
    p.set_defaults(func=cmd_api)


def cmd_api(args: argparse.Namespace) -> int:
    import asyncio

    from tandem.cli import UserError
    from tandem.services.cli_worker import _settings

    from tandem.services.api.approvals import Policy, PolicyError
    from tandem.services.api.auth import TokenError, Tokens
    from tandem.services.api.server import Tls

    settings = _settings(args)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UserError("--tls-cert and --tls-key go together")
    if args.client_ca and not args.tls_cert:
        raise UserError("--client-ca (mutual TLS) needs --tls-cert and --tls-key")
    try:
        tls = Tls.load(args.tls_cert, args.tls_key, args.client_ca) if args.tls_cert else None
        tokens = Tokens.load(args.tokens) if args.tokens else None
        policy = Policy.parse(args.require_approval)
        return asyncio.run(_serve(args, settings.broker, settings.topic_prefix, tls, tokens,
                                  policy))
    except (OSError, TokenError, PolicyError) as exc:
        raise UserError(str(exc)) from None


async def _serve(args: argparse.Namespace, broker: str, prefix: str, tls: Any, tokens: Any,
                 policy: Any) -> int:
    import asyncio
    import os
    import signal

    from tandem.services.api.approvals import Webhook
    from tandem.services.api.server import create_server

    listen = args.listen
    webhook = None
    if args.approval_webhook:
        webhook = Webhook(args.approval_webhook, broker, prefix, args.approval_webhook_token
                          or os.environ.get("TANDEM_APPROVAL_WEBHOOK_TOKEN", ""))
    server, port = await create_server(listen, broker, prefix, tls, tokens, policy, webhook)
    await server.start()
    host = listen.rsplit(":", 1)[0]
    mode = ("mutual TLS" if tls is not None and tls.client_ca else "TLS" if tls is not None
            else "plaintext")
    auth = (f"{len(tokens)} bearer token(s)" if tokens is not None
            else "no token file: open to every caller")
    print(f"tandem api: listening on {host}:{port} (broker {broker}, topic prefix "
          f"{prefix!r}, {mode}, {auth}; {policy.describe()}"
          + (f"; approval webhook {args.approval_webhook}" if webhook else "") + ")", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("tandem api: stopping", flush=True)
    await server.stop(1.0)
    return 0
