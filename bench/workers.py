"""Real `tandem worker` processes for the benchmarks: started, stopped, killed and counted.

Shared by the benchmarks (`fuzz`, `failover`, `request-latency`, `api`, `provision`): each worker is its own process
(as in production), with its own log file; an exit the benchmark did not ask for is counted
and, when `restart` is set, the worker is started again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any


class Workers:
    """Up to `n` workers of one app id (one consumer group), under one topic prefix."""

    def __init__(self, n: int, broker: str, prefix: str, tmp: Path, app_id: str,
                 restart: bool = True, loglevel: str = "info") -> None:
        self.n, self.broker, self.prefix, self.tmp = n, broker, prefix, tmp
        self.app_id, self.restart, self.loglevel = app_id, restart, loglevel
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.started = 0
        self.exits: list[int] = []  # exit codes of exits nobody asked for
        self._task: asyncio.Task[None] | None = None

    def log(self, slot: int) -> Path:
        return self.tmp / f"worker{slot}.log"

    def start(self, slot: int) -> subprocess.Popen[bytes]:
        env = {**os.environ, "TANDEM_KAFKA": self.broker, "TANDEM_TOPIC_PREFIX": self.prefix,
               "TANDEM_APP_ID": self.app_id, "TANDEM_DATA_DIR": str(self.tmp / f"w{slot}")}
        out = open(self.log(slot), "ab")
        proc = subprocess.Popen([sys.executable, "-m", "tandem.cli", "worker", "--no-web",
                                 "--loglevel", self.loglevel],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
        self.procs[slot] = proc
        self.started += 1
        return proc

    def start_all(self) -> None:
        for slot in range(self.n):
            self.start(slot)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    def stop(self, slot: int, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        """Stop one worker (asked for: not counted as an exit); its exit code."""
        proc = self.procs.pop(slot, None)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(10)

    def stop_all(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for slot in list(self.procs):
            if self.procs[slot].poll() is None:
                self.procs[slot].send_signal(signal.SIGTERM)
        for slot in list(self.procs):
            self.stop(slot)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            for slot, proc in list(self.procs.items()):
                if proc.poll() is not None:
                    self.exits.append(proc.returncode)
                    del self.procs[slot]
                    print(f"worker {slot} exited with {proc.returncode}"
                          + (": restarted" if self.restart else ""), flush=True)
                    if self.restart:
                        self.start(slot)

    async def wait_log(self, slot: int, text: bytes, count: int = 1,
                       timeout: float = 120.0) -> None:
        """Until worker `slot`'s log holds `text` `count` times (raises TimeoutError)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        path = self.log(slot)
        while not path.exists() or path.read_bytes().count(text) < count:
            if loop.time() > deadline:
                raise TimeoutError(f"{path}: {text!r} not seen {count} time(s) in {timeout:.0f} s")
            await asyncio.sleep(0.1)

    async def __aenter__(self) -> Workers:
        self.start_all()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop_all()


def decider_inputs(prefix: str) -> list[str]:
    """The topics the decider reads (what `wait_committed` watches for its consumer group)."""
    from tandem.streams import topics as T

    return [T.SPECS[b].name(prefix) for b in (T.INVENTORY_BASE, T.REQUESTS_BASE,
                                              T.LINK_STATE_BASE, T.CONTROL_BASE)]


async def publish_inventory(producer: Any, prefix: str, topo: Any) -> None:
    """The topology's inventory events on the inventory topic, flushed."""
    from tandem.inventory import inventory_events, inventory_key
    from tandem.streams import topics as T

    topic = T.SPECS[T.INVENTORY_BASE].name(prefix)
    for ev in inventory_events(topo, source="bench/inventory"):
        await producer.send(topic, key=inventory_key(ev).encode(), value=ev.SerializeToString())
    await producer.flush()


async def inventory_decided(producer: Any, broker: str, prefix: str, app_id: str,
                            topo: Any) -> None:
    """Publish the inventory and wait until the running decider has committed all of it, so
    that requests (on another topic) meet the whole topology."""
    from tandem.streams.readback import wait_committed

    await publish_inventory(producer, prefix, topo)
    await wait_committed(broker, f"{app_id}.decider-inputs", decider_inputs(prefix), 120)
