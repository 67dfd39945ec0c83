"""Helpers of the whole-loop tests (order → decider → executor → compute and SDN units): the
stream processors in-process, compute units as processes, and readers of what the switches
and topics show."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from itest_wait import until
from sdn_itest_util import collect
from tandem.sdn.wanhosts import dump_flows

from tandem.sdn.intents import cookie_for
from tandem.services.compute.procs import start_unit, stop_units
from tandem.streams import topics as T
from tandem.v1 import decision_pb2


def flows_of(bridge: str, rid: str, gen: int) -> list[str]:
    return [f for f in dump_flows(bridge) if f"cookie={cookie_for(rid, gen):#x}" in f]


async def until_flows(bridge: str, rid: str, gen: int, timeout: float = 20.0) -> None:
    """Each site's unit applies its own command: wait for this switch, not only the ingress."""
    await until(lambda: len(flows_of(bridge, rid, gen)) == 1,
                lambda: f"{rid} g{gen} on {bridge}: {dump_flows(bridge)}", timeout, every=0.2)


async def decisions(bootstrap: str, prefix: str, pred: Any, timeout: float = 30.0) -> list[Any]:
    return await collect(bootstrap, f"{prefix}{T.DECISIONS_BASE}", decision_pb2.Decision, pred,
                         timeout)


async def phase(bootstrap: str, prefix: str, wid: str, phase: int, revision: int,
                timeout: float = 60.0) -> list[Any]:
    return await collect(bootstrap, f"{prefix}{T.WORKLOAD_STATUS_BASE}",
                         decision_pb2.WorkloadStatus,
                         lambda s: s.workload_id == wid and s.phase == phase
                         and s.revision == revision, timeout)


def start_compute(bootstrap: str, prefix: str, site: str, tmp: Path, driver: str = "sim",
                  env: Mapping[str, str] | None = None,
                  retry_s: float = 20.0) -> subprocess.Popen[bytes]:
    """`tandem compute --site SITE --driver DRIVER` as a process (env: TANDEM_VSPHERE_*)."""
    return start_unit(site, bootstrap, prefix, tmp, driver, env=env, retry_s=retry_s)


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    stop_units(procs)


@asynccontextmanager
async def stream_processors(bootstrap: str, prefix: str, tmp: Path) -> AsyncIterator[Any]:
    """The worker's app in this process (the whole-loop tests of one session share its
    consumer group, so each continues where the previous one left the decider log)."""
    from tandem.streams.app import create_app
    from tandem.streams.settings import Settings

    app = create_app(Settings(broker=bootstrap, topic_prefix=prefix, app_id=f"{prefix}e2e",
                              web_enabled=False, data_dir=str(tmp)))
    await app.app.start()
    try:
        yield app
    finally:
        await app.app.stop()
