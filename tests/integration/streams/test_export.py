"""`tandem export` against the real broker: a CSV replay and real host interface counters
land on the telemetry topic in the documented encodings."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from tandem.services import cli_export
from tandem.streams import topics as T
from tandem.telemetry_formats import parse
from tandem.v1 import telemetry_pb2 as tm

pytestmark = pytest.mark.integration


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tandem")
    cli_export.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))


async def read(bootstrap: str, topic: str, n: int) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, isolation_level="read_committed", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + 30
        while len(out) < n and time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=300)).values():
                out.extend(recs)
    finally:
        await consumer.stop()
    return out


async def test_export_csv_lands_on_topic(kafka_bootstrap: str, tandem_topics: str,
                                         tmp_path: Any) -> None:
    f = tmp_path / "samples.csv"
    t = time.time() - 60
    f.write_text(
        "time,link_id,from_site,utilisation_mbps,latency_ms,loss,site_id,free_vcpus\n"
        f"{t},ams-fra,ams,120.5,21.0,0.001,,\n"
        f"{t + 1},ams-fra,fra,,22.5,,,\n"  # partial: goes out as flat JSON
        f"{t + 2},,,,,,ams,48\n")
    assert await asyncio.to_thread(run_cli, ["export", "--file", str(f), "--broker", kafka_bootstrap,
                    "--topic-prefix", tandem_topics, "--rate", "100"]) == 0
    recs = await read(kafka_bootstrap, T.SPECS[T.TELEMETRY_BASE].name(tandem_topics), 3)
    assert sorted(r.key for r in recs) == [b"ams", b"ams-fra", b"ams-fra"]
    by_kind: dict[str, Any] = {}
    for r in recs:
        if r.value.startswith(b"{"):
            by_kind["json"] = json.loads(r.value)
        else:
            s = tm.TelemetrySample.FromString(r.value)
            by_kind[s.WhichOneof("sample")] = s
    assert by_kind["link"].link.utilisation_mbps == 120.5
    assert by_kind["link"].meta.time.seconds == int(t)
    assert by_kind["site"].site.free_vcpus == 48
    assert by_kind["json"] == {"link_id": "ams-fra", "from_site": "fra", "time": t + 1,
                               "latency_ms": 22.5}
    for r in recs:  # and the agent's parser accepts every one of them
        assert parse(r.value, time.time(), time.time())


async def test_export_host_counters(kafka_bootstrap: str, tandem_topics: str) -> None:
    assert await asyncio.to_thread(run_cli, ["export", "--interfaces", "lo", "--map", "lo=ams-fra:ams", "--count", "2",
                    "--interval", "0.2", "--broker", kafka_bootstrap,
                    "--topic-prefix", tandem_topics]) == 0
    recs = await read(kafka_bootstrap, T.SPECS[T.TELEMETRY_BASE].name(tandem_topics), 2)
    assert len(recs) == 2
    for r in recs:
        d = json.loads(r.value)
        assert d["link_id"] == "ams-fra" and d["from_site"] == "ams"
        assert d["utilisation_mbps"] >= 0 and 0 <= d["loss"] <= 1 and "latency_ms" not in d


async def test_export_ovs_counters(kafka_bootstrap: str, tandem_topics: str) -> None:
    """A bridge of our own on the real Open vSwitch: its interface counters are exported."""
    import subprocess
    import uuid

    from tandem.cli import UserError
    from tandem.services.cli_wan import ensure_ovs

    try:
        ensure_ovs()  # idempotent, like the SDN tests' `wan` fixture; fails, never skips
    except UserError as exc:
        pytest.fail(f"Open vSwitch is not available: {exc}", pytrace=False)
    br = f"tdmx{uuid.uuid4().hex[:8]}"
    subprocess.run(["ovs-vsctl", "add-br", br, "--", "set", "bridge", br,
                    "datapath_type=netdev"], check=True, timeout=20)
    try:
        assert await asyncio.to_thread(run_cli, [
            "export", "--ovs", "--map", f"{br}=ams-fra:fra", "--count", "1", "--interval",
            "0.3", "--broker", kafka_bootstrap, "--topic-prefix", tandem_topics]) == 0
    finally:
        subprocess.run(["ovs-vsctl", "--if-exists", "del-br", br], check=True, timeout=20)
    [r] = await read(kafka_bootstrap, T.SPECS[T.TELEMETRY_BASE].name(tandem_topics), 1)
    d = json.loads(r.value)
    assert r.key == b"ams-fra" and d["from_site"] == "fra" and d["utilisation_mbps"] >= 0
