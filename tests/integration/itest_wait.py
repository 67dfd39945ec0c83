"""Waiting for a condition, the one way the integration tests wait (never for a time).

CI runs on machines slower and faster than ours: a test waits until what it needs is true,
re-checking every `every` seconds, and fails after `timeout` naming what it waited for (the
timeout bounds a hang; it is not a duration anything is expected to take).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

Pred = Callable[[], bool | Awaitable[bool]]


def _say(what: str | Callable[[], str]) -> str:
    return what() if callable(what) else what


async def until(pred: Pred, what: str | Callable[[], str], timeout: float = 30.0,
                every: float = 0.05) -> None:
    """Return once `pred()` (plain or awaitable) is true; fail after `timeout` naming `what`
    (a string, or a function giving one: the state at the moment of failing)."""
    deadline = time.monotonic() + timeout
    while True:
        ok = pred()
        if inspect.isawaitable(ok):
            ok = await ok
        if ok:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {_say(what)}")
        await asyncio.sleep(every)


def until_sync(pred: Callable[[], bool], what: str | Callable[[], str], timeout: float = 30.0,
               every: float = 0.05) -> None:
    """`until` for code outside an event loop."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {_say(what)}")
        time.sleep(every)
