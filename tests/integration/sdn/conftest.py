"""Shared fixtures of the SDN integration tests: a real emulated WAN (5-site ring on Open
vSwitch), one real control-unit process per site, Kafka topics under a fresh prefix.

Nothing here skips: no OVS, no root or no broker makes the tests fail with the reason.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tandem.sdn.driver import SdnDriver
from tandem.sdn.paths import WanLayout
from tandem.sdn.procs import Units

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
RING = HERE / "ring5.json"
RUN_DIR = REPO / ".local" / "sdn-test"


@pytest.fixture(scope="session")
def wan() -> Iterator[dict[str, Any]]:
    """The 5-site ring, built for this session and removed after it."""
    from tandem.engine.loaders import load_topology
    from tandem.services import cli_wan

    if os.geteuid() != 0:
        pytest.fail("the SDN integration tests need root (network namespaces, OVS)",
                    pytrace=False)
    try:
        cli_wan.ensure_ovs()
        cli_wan.wan_down()  # a WAN left over by an interrupted run of ours (state file)
        state = cli_wan.wan_up(load_topology(RING), scale=1.0)
    except Exception as exc:
        pytest.fail(f"cannot build the emulated WAN: {exc}", pytrace=False)
    yield state["layout"]
    cli_wan.wan_down()


@pytest.fixture(scope="session")
def layout(wan: dict[str, Any]) -> WanLayout:
    return WanLayout.from_json(wan)


@pytest.fixture(scope="session")
def sdn_prefix(kafka_bootstrap: str) -> Iterator[str]:
    from tandem.services.kafka_admin import delete_topics_with_prefix

    prefix = f"test-sdn-{uuid.uuid4().hex[:8]}."
    yield prefix
    asyncio.run(delete_topics_with_prefix(kafka_bootstrap, prefix))


@pytest.fixture(scope="session")
def units(wan: dict[str, Any], kafka_bootstrap: str, sdn_prefix: str) -> Iterator[Units]:
    from tandem.services.kafka_admin import ensure_topics
    from tandem.streams import topics as T

    asyncio.run(ensure_topics(kafka_bootstrap, T.core_topics(sdn_prefix)
                              + T.site_topics(list(wan["sites"]), sdn_prefix)))
    # what `tandem infra wan up --broker` publishes: datapath ids, attachment and link ports
    from tandem.engine.loaders import load_topology
    from tandem.sdn.publish import publish_inventory

    publish_inventory(kafka_bootstrap, load_topology(RING), wan, sdn_prefix)
    u = Units(wan, kafka_bootstrap, sdn_prefix, RUN_DIR)
    for site in wan["sites"]:
        u.start(site)
    try:
        u.wait_connected()
        yield u
    finally:
        for site in list(u.procs):
            u.stop(site)


@pytest.fixture
async def driver(units: Units, kafka_bootstrap: str, sdn_prefix: str) -> AsyncIterator[SdnDriver]:
    d = SdnDriver(kafka_bootstrap, sdn_prefix)
    await d.start()
    yield d
    await d.stop()


