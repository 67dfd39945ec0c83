"""A worker whose consumer group cannot form says so (health, metrics, log) instead of waiting
in silence.

The stall is real, not simulated: the worker may not declare topics and its tables' changelog
topics do not exist, so Faust's assignor raises (a global table's changelog is missing from the
metadata), aiokafka holds that error for the consumer's user, and Faust never collects it —
the state `make demo` hung in when new topics were not yet in the broker's metadata."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import pytest
from itest_wait import until

from tandem.streams import web
from tandem.streams.app import create_app
from tandem.streams.settings import Settings


async def test_a_stalled_group_is_reported(kafka_bootstrap: str, tandem_topics: str,
                                           tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web, "WATCHDOG_S", 0.2)
    tandem = create_app(Settings(broker=kafka_bootstrap, topic_prefix=tandem_topics,
                                 app_id=f"{tandem_topics}app", web_enabled=False,
                                 data_dir=str(tmp_path)))
    tandem.app.conf.topic_allow_declare = False  # its changelog topics will not exist
    caplog.set_level(logging.ERROR, logger="tandem.streams.web")
    start = asyncio.create_task(tandem.app.start())
    try:
        def pending() -> bool:
            assert not start.done(), "the worker started although its changelogs are missing"
            return bool(web.group_state(tandem.app)["state"] == "error_pending")

        await until(pending, lambda: f"error_pending: {web.group_state(tandem.app)}", 60)
        snap = await web.snapshot(tandem)
        group = snap["group"]
        assert group["assigned_partitions"] == 0
        assert "changelog" in group["error"]
        assert "tandem_consumer_group_error_pending 1" in web.prometheus(snap)
        await until(lambda: any("is stalled" in r.getMessage() for r in caplog.records),
                    "the watchdog to say the group is stalled", 60)
        assert not start.done()
    finally:
        start.cancel()
        with contextlib.suppress(BaseException):
            await start
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(tandem.app.stop(), 30)
