"""`kill -USR2 <worker pid>` dumps what a stalled worker is doing (stacks of every thread, the
await chain of every task on every event loop, what each Kafka producer still holds) and the
worker goes on running."""

from __future__ import annotations

import signal
from pathlib import Path

from test_worker_failover import start_worker, stop, wait_log  # type: ignore[import-not-found]

from conftest import Bus, place  # type: ignore[import-not-found]
from tandem.streams import topics as T
from tandem.v1 import decision_pb2 as D


async def test_sigusr2_dumps_tasks_and_producers_and_the_worker_goes_on(
        bus: Bus, tmp_path: Path) -> None:
    worker = start_worker(bus.bootstrap, bus.prefix, tmp_path, "w")
    log = tmp_path / "w.log"
    try:
        await wait_log(log, b"Worker ready")
        worker.send_signal(signal.SIGUSR2)
        await wait_log(log, b"--- producer", timeout=20)
        text = log.read_bytes()
        assert b"Current thread" in text  # faulthandler: every thread's stack
        assert text.count(b"--- tasks of") >= 2  # the main loop and the consumer thread's loop
        assert b"_drain_messages" in text or b"_execute_task" in text  # await chains, not only tops
        assert b"Starting debugger" not in text
        # It goes on working: an order sent after the dump is decided.
        await bus.inventory()
        await bus.send(T.REQUESTS_BASE, place("after-dump", "w1", bw=5, vcpus=1), b"w1")
        await bus.wait_read(bus.name(T.DECISIONS_BASE), D.Decision,
                            lambda ds: any(d.request_id == "after-dump" for d in ds))
        assert worker.poll() is None, "the worker stopped after the dump"
    finally:
        stop(worker, signal.SIGTERM)
