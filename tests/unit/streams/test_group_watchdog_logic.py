"""The stalled-group watchdog speaks only when the same error is still held one check later,
and once per error (stand-in consumer objects: this checks the watchdog's logic only; the real
stall is in tests/integration/streams/test_group_watchdog.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import SimpleNamespace

import pytest

from tandem.streams import web


def fake_tandem() -> SimpleNamespace:
    coordinator = SimpleNamespace(_pending_exception=None, generation=1)
    consumer = SimpleNamespace(_coordinator=coordinator, assignment=lambda: set())
    app = SimpleNamespace(consumer=SimpleNamespace(_thread=SimpleNamespace(_consumer=consumer)))
    return SimpleNamespace(app=app, settings=SimpleNamespace(app_id="g"), coordinator=coordinator)


async def ticks(n: int) -> None:
    await asyncio.sleep(web.WATCHDOG_S * n)


async def test_transient_error_is_not_reported_a_persistent_one_once(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web, "WATCHDOG_S", 0.02)
    caplog.set_level(logging.ERROR, logger="tandem.streams.web")
    t = fake_tandem()
    task = asyncio.create_task(web.watch_group(t))
    try:
        await ticks(2.5)
        t.coordinator._pending_exception = RuntimeError("blip")
        await ticks(0.5)  # shorter than the period: seen by one check at most
        t.coordinator._pending_exception = None
        await ticks(3)
        assert not caplog.records
        assert web.group_state(t.app)["state"] == "waiting"
        t.coordinator._pending_exception = KeyError("x-changelog")
        await ticks(6)
        assert [r.getMessage().count("x-changelog") for r in caplog.records] == [1]
        assert web.group_state(t.app)["state"] == "error_pending"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
