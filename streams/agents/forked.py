"""CPU-bound encoding of the decider's state in a forked child, so the event loop never waits.

Why: a snapshot of the decider (`tandem.snapshot.encode_state`, then `fingerprint`) pickles the
whole engine state. With 1,000 workloads on GÉANT that is 80-120 ms of CPU in the best case, and
its allocations (a state list per dataclass, kept alive by the pickler's memo) set off Python's
full garbage collection: 150-350 ms measured inside the worker, every `SNAPSHOT_MAX_AGE_S`, in
the middle of a decider transaction: every order arriving meanwhile waited (`tandem bench
api`: the worst PlaceAndConnect calls at 10/s). A thread would not help (the pickler holds the
GIL for most of it, and the state keeps changing while the next inputs are folded).

`os.fork()` gives the child a copy-on-write image of the state exactly as it is at the fork:
consistent by construction, whatever the decider folds afterwards. The child runs `work()`,
writes its bytes (length-prefixed) to a pipe and leaves with `os._exit` (no clean-up of the
parent's Kafka clients, sockets or tasks runs in it). The parent reads the pipe from its event
loop (`add_reader`) and only ever takes a complete payload: a child that fails, is killed, or
is cancelled yields None. Forking costs the parent a few milliseconds (page tables: ~3-9 ms
at 250 MB) and the child a temporary copy of the pages it touches.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import Callable
from typing import NoReturn

log = logging.getLogger(__name__)
_LEN = 8  # bytes of the payload's length prefix


def _child(work: Callable[[], bytes], fd: int) -> NoReturn:
    """In the child: no signal reaches the parent's handlers, no collection, one payload."""
    code = 1
    try:
        try:  # the parent's asyncio wake-up fd and handlers are not ours (main thread only)
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
        except ValueError:
            pass
        gc.disable()  # exits right after: collecting would only cost time and copied pages
        data = work()
        view = memoryview(len(data).to_bytes(_LEN, "big") + data)
        while view:
            view = view[os.write(fd, view):]
        code = 0
    except BaseException:  # noqa: BLE001 - the parent sees an incomplete payload: None
        pass
    finally:
        os._exit(code)


class Forked:
    """`work()` run in a forked child; `done()` once its payload is in (or it failed)."""

    def __init__(self, work: Callable[[], bytes], what: str) -> None:
        self.what = what
        self._loop = asyncio.get_running_loop()
        read, write = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read)
            os.close(write)
            raise
        if pid == 0:  # pragma: no cover - the child (measured through the parent)
            os.close(read)
            _child(work, write)
        os.close(write)
        os.set_blocking(read, False)
        self.pid: int | None = pid
        self._fd: int | None = read
        self._chunks: list[bytes] = []
        self._result: bytes | None = None
        self._done = False
        self._failed = False
        self._finished = asyncio.Event()
        self._loop.add_reader(read, self._readable)

    def done(self) -> bool:
        return self._done

    async def wait(self) -> bytes | None:
        """Until the child is done: its payload, None if it failed."""
        await self._finished.wait()
        return self._result

    def result(self) -> bytes | None:
        """The child's payload, None if it failed (only once `done()`)."""
        assert self._done
        return self._result

    def cancel(self) -> None:
        """Stop the child (its payload is no longer wanted) and reap it: waiting for a killed
        child to be gone is fine here (a reset, a takeover, a stuck child: slow paths)."""
        pid = self.pid
        if pid is not None and not self._done:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._finish(None, cancelled=True)
        if self.pid is not None:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:  # reaped elsewhere
                pass
            self.pid = None

    def _readable(self) -> None:
        assert self._fd is not None
        try:
            chunk = os.read(self._fd, 1 << 20)
        except BlockingIOError:
            return
        except OSError as exc:
            log.warning("%s: reading the child failed: %r", self.what, exc)
            self._finish(None)
            return
        if chunk:
            self._chunks.append(chunk)
            return
        data = b"".join(self._chunks)  # end of file: the child is exiting
        size = int.from_bytes(data[:_LEN], "big") if len(data) >= _LEN else -1
        self._finish(data[_LEN:] if size == len(data) - _LEN else None)

    def _finish(self, result: bytes | None, cancelled: bool = False) -> None:
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
        if not self._done:
            self._chunks, self._result, self._done = [], result, True
            self._failed = result is None and not cancelled
            self._finished.set()
        self._reap()

    def _reap(self) -> None:
        """Collect the child's exit without waiting for it (tearing down a large copy-on-write
        image can take milliseconds): again a little later while it is still exiting."""
        if self.pid is None:
            return
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere
            self.pid = None
            return
        if pid == 0:
            if not self._loop.is_closed():
                self._loop.call_later(0.01, self._reap)
            return
        self.pid = None
        if self._failed:
            log.warning("%s: the child failed (exit %s): nothing written", self.what,
                        os.waitstatus_to_exitcode(status))
