"""`tandem worker` (the stream processors) and `tandem demo`."""

from __future__ import annotations

import argparse
import logging
import os
import sys


def _settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from tandem.streams.settings import Settings

    try:
        s = Settings.from_env()
    except ValueError as exc:
        from tandem.cli import UserError

        raise UserError(str(exc)) from None
    for field in ("broker", "topic_prefix", "app_id", "web_port"):
        value = getattr(args, field, None)
        if value is not None:
            s = replace(s, **{field: value})
    if getattr(args, "no_web", False):
        s = replace(s, web_enabled=False)
    return s


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", help="Kafka bootstrap host:port (env TANDEM_KAFKA; default 127.0.0.1:9092)")
    p.add_argument("--topic-prefix", dest="topic_prefix", help="topic name prefix (env TANDEM_TOPIC_PREFIX)")
    p.add_argument("--app-id", dest="app_id", help="Faust app id / consumer group (env TANDEM_APP_ID)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    w = sub.add_parser("worker", help="run a stream-processing worker (Faust)")
    _common(w)
    w.add_argument("--web-port", dest="web_port", type=int, help="health/metrics port (default 6066)")
    w.add_argument("--no-web", action="store_true", help="no web endpoint")
    w.add_argument("--loglevel", default="info")
    w.set_defaults(func=cmd_worker)
    d = sub.add_parser("demo", help="the end-to-end demo on the local broker")
    _common(d)
    d.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for each step (start-up, fold, decisions, reaction)")
    d.add_argument("--web-port", dest="web_port", type=int,
                   help="also serve the live view on this port while the demo runs (default: none)")
    d.add_argument("--hold", action="store_true",
                   help="after the last step keep the stream processors (and the live view) "
                        "running until Ctrl-C (act two, the emulated WAN, is then not run)")
    d.add_argument("--no-wan", dest="wan", action="store_false",
                   help="skip act two (the whole loop acting on an emulated WAN; needs root)")
    d.set_defaults(func=cmd_demo)
    r = sub.add_parser("replay", help="re-derive every decision from the decider log and "
                                      "compare with the decision log")
    _common(r)
    r.set_defaults(func=cmd_replay)
    o = sub.add_parser("reoptimise", help="ask the decider to re-route reservations off the "
                                          "most loaded links (staged, make-before-break; one "
                                          "stage at a time, each carried out before the next)")
    _common(o)
    o.add_argument("--target", type=float, default=0.0,
                   help="stop once the most used link is at or under this utilisation (0..1; "
                        "0: move while a move lowers it)")
    o.set_defaults(func=cmd_reoptimise)


def cmd_worker(args: argparse.Namespace) -> int:
    import faust

    from tandem.streams.app import create_app

    settings = _settings(args)
    os.environ.setdefault("TANDEM_KAFKA", settings.broker)
    from tandem.engine.decide import warm_up

    # Every worker, standing by or not: the one that takes the decider over folds the log's
    # tail at once, without first loading the engine's compiled kernels.
    logging.getLogger(__name__).info("engine warmed up in %.2f s", warm_up())
    tandem = create_app(settings)
    worker = faust.Worker(tandem.app, loglevel=args.loglevel)
    from tandem.streams.compat import mode_worker

    mode_worker.configure(worker, _dump_stacks)  # SIGUSR2: a stack dump; the root log level
    worker.execute_from_commandline()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from tandem.services.demo import run_demo

    from dataclasses import replace

    if args.app_id is None:
        args.app_id = "tandem-demo"
    settings = _settings(args)
    if args.web_port is None:  # nothing to browse in a run that ends by itself
        settings = replace(settings, web_enabled=False)
    signal.signal(signal.SIGUSR2, lambda *_: _dump_stacks())  # as `tandem worker` does
    # Ctrl-C (SIGINT) and SIGTERM end the demo cleanly, also when it was started with SIGINT
    # ignored (a shell starts `cmd &` that way in scripts, and so did a CI runner: Ctrl-C then
    # did nothing at all). asyncio.run turns SIGINT into a cancellation of the demo only when the
    # default handler is in place; SIGTERM is routed to the same path.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    return asyncio.run(run_demo(settings, timeout=args.timeout, hold=args.hold, wan=args.wan))


def cmd_replay(args: argparse.Namespace) -> int:
    import asyncio

    from tandem.services.replay import replay

    from tandem.cli import UserError

    settings = _settings(args)
    try:
        rep = asyncio.run(replay(settings.broker, settings.topic_prefix))
    except Exception as exc:  # the broker or a topic is missing: say which, no traceback
        raise UserError(f"replay could not read the logs on {settings.broker}: {exc}") from None
    print(f"replayed {rep.inputs} decider inputs in {rep.seconds:.2f} s: {rep.derived} decisions "
          f"re-derived, {rep.logged} on the log, {rep.matched} identical")
    if rep.refused:
        print(f"{sum(rep.refused.values())} decider-log records refused (dead-lettered by the "
              f"worker too): " + ", ".join(f"{k} {v}" for k, v in sorted(rep.refused.items())))
        for ex in rep.refused_examples:
            print(f"  {ex}")
    if rep.undecodable_decisions:
        print(f"{rep.undecodable_decisions} records on the decisions topic are not decisions")
    if rep.ok:
        print("replay matches the decision log")
        return 0
    if rep.first_divergence:
        print(f"FIRST DIVERGENCE: {rep.first_divergence}")
    if rep.missing_from_log:
        print(f"{len(rep.missing_from_log)} re-derived decisions are not on the log "
              f"(first: {rep.missing_from_log[0]})")
    if rep.not_rederived:
        print(f"{len(rep.not_rederived)} logged decisions were not re-derived "
              f"(first: {rep.not_rederived[0]})")
    return 1


def cmd_reoptimise(args: argparse.Namespace) -> int:
    import asyncio

    from aiokafka import AIOKafkaProducer

    from tandem.events import new_meta
    from tandem.streams import topics as T
    from tandem.v1 import decider_pb2

    if not 0.0 <= args.target <= 1.0:
        print(f"--target {args.target}: a utilisation between 0 and 1", file=sys.stderr)
        return 2
    settings = _settings(args)
    order = decider_pb2.DeciderInput(meta=new_meta("cli/reoptimise"),
                                     reoptimise=decider_pb2.ReoptimiseOrder(
                                         target_utilisation=args.target))

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(T.SPECS[T.CONTROL_BASE].name(settings.topic_prefix),
                                         key=b"", value=order.SerializeToString())
        finally:
            await producer.stop()

    asyncio.run(send())
    target = f"target max utilisation {args.target:.0%}" if args.target else "no target"
    print(f"re-optimisation ordered ({order.meta.event_id}, {target}); each stage's decisions "
          f"follow on {T.SPECS[T.DECISIONS_BASE].name(settings.topic_prefix)} once the previous "
          "stage is carried out; a refusal or the outcome comes as an alarm")
    return 0


def _dump_stacks() -> None:
    """`kill -USR2 <pid>` logs every thread's and asyncio task's stack (diagnosing a stall)."""
    import faulthandler
    import sys

    from tandem.streams.compat import aiokafka_private

    out = sys.__stderr__  # a real file: mode replaces sys.stderr with a logging proxy
    faulthandler.dump_traceback(file=out, all_threads=True)
    for line in _task_chains():
        print(line, file=out)
    for line in aiokafka_private.producer_queues() + aiokafka_private.consumer_states():
        print(line, file=out)
    out.flush()


def _task_chains() -> list[str]:
    """The whole await chain of every task on every event loop in the process (Faust's
    consumer runs its own loop in a thread), not only each task's outer frame."""
    import asyncio
    import gc

    lines: list[str] = []
    for loop in [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop)]:
        lines.append(f"--- tasks of {loop!r}")
        for task in list(asyncio.all_tasks(loop)):
            lines.append(f"task {task.get_name()}:")
            aw: object = task.get_coro()
            seen: set[int] = set()
            while aw is not None and id(aw) not in seen and len(seen) < 64:  # chains may cycle
                seen.add(id(aw))
                frame = next((getattr(aw, a) for a in ("cr_frame", "gi_frame", "ag_frame")
                              if getattr(aw, a, None) is not None), None)
                if frame is None:
                    lines.append(f"    awaiting {aw!r:.200}")
                    break
                lines.append(f"    {frame.f_code.co_filename}:{frame.f_lineno} "
                             f"{frame.f_code.co_name}")
                aw = next((getattr(aw, a) for a in ("cr_await", "gi_yieldfrom", "ag_await")
                           if getattr(aw, a, None) is not None), None)
    return lines


