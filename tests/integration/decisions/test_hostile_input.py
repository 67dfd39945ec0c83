"""Issue 9's defects, each reproduced against a real `tandem worker` and the real broker.

Each test failed before its fix: a valid telemetry sample after a decision killed the worker;
a 1 MB record started a crash loop; a request reusing another's event id vanished; a capacity
of 1e308 broke every later topology change; an undecodable link-state record was dead-lettered
twice; `tandem replay` ended in a traceback on a log the worker tolerated. The bounded fuzz soak
runs every class of bad input on every topic (`tandem bench fuzz`).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from test_worker_failover import app_id, start_worker, stop  # type: ignore[import-not-found]

from conftest import Bus, link_down, place  # type: ignore[import-not-found]
from tandem.decider import Decider
from tandem.events import new_meta
from tandem.services.replay import replay
from tandem.streams import topics as T
from tandem.events import derived_id
from tandem.v1 import alarms_pb2, decider_pb2, decision_pb2 as D, inventory_pb2 as K
from tandem.v1 import link_state_pb2 as L, telemetry_pb2 as TM

REPO = Path(__file__).resolve().parents[3]


def wrap(original: object, **which: object) -> decider_pb2.DeciderInput:
    meta = new_meta("test", event_id=derived_id("decider-input",
                                                 original.meta.event_id))  # type: ignore[attr-defined]
    return decider_pb2.DeciderInput(meta=meta, **which)  # type: ignore[arg-type]


async def letters(bus: Bus) -> list[alarms_pb2.DeadLetter]:
    return await bus.read(bus.name(T.DEAD_LETTERS_BASE), alarms_pb2.DeadLetter)


async def test_a_valid_telemetry_sample_after_a_decision_is_folded(bus: Bus, tmp_path: Path) -> None:
    worker = start_worker(bus.bootstrap, bus.prefix, tmp_path, "w")
    try:
        await bus.inventory()
        await bus.send(T.REQUESTS_BASE, place("r1", "w1", bw=5, vcpus=1), b"w1")
        await bus.wait_read(bus.name(T.DECISIONS_BASE), D.Decision, lambda ds: len(ds) >= 1)
        sample = TM.TelemetrySample(meta=new_meta("test"), link=TM.LinkSample(
            link_id="ams-fra", from_site="ams", utilisation_mbps=10, latency_ms=5, loss=0))
        await bus.send(T.TELEMETRY_BASE, sample, b"ams-fra")
        changelog = f"{app_id(bus.prefix)}-link_metrics-changelog"
        await bus.wait_read(changelog, TM.LinkMetrics,
                            lambda ms: any(m.link_id == "ams-fra" for m in ms))
        await bus.send(T.REQUESTS_BASE, place("r2", "w2", bw=5, vcpus=1), b"w2")
        await bus.wait_read(bus.name(T.DECISIONS_BASE), D.Decision,
                            lambda ds: any(d.request_id == "r2" for d in ds))
        assert worker.poll() is None, (tmp_path / "w.log").read_text()[-3000:]
    finally:
        stop(worker, signal.SIGTERM)


async def test_one_megabyte_records_are_dead_lettered_once_and_the_worker_goes_on(
        bus: Bus, tmp_path: Path) -> None:
    from aiokafka import AIOKafkaProducer

    worker = start_worker(bus.bootstrap, bus.prefix, tmp_path, "w")
    big = AIOKafkaProducer(bootstrap_servers=bus.bootstrap, max_request_size=2 * 1024 * 1024)
    await big.start()
    bases = (T.REQUESTS_BASE, T.INVENTORY_BASE, T.LINK_STATE_BASE, T.TELEMETRY_BASE,
             T.CONTROL_BASE)
    try:
        await bus.inventory()
        payload = b"\x0a" + bytes(range(256)) * 3900  # ~1 MB
        for base in bases:
            await big.send_and_wait(bus.name(base), key=b"big", value=payload)
        await bus.send(T.REQUESTS_BASE, place("after", "w1", bw=5, vcpus=1), b"w1")
        await bus.wait_read(bus.name(T.DECISIONS_BASE), D.Decision,
                            lambda ds: any(d.request_id == "after" for d in ds))
        await bus.settled(app_id(bus.prefix))
        await bus.settled(app_id(bus.prefix), (T.TELEMETRY_BASE,), loop="telemetry")
        got = [d for d in await letters(bus) if d.payload_size == len(payload)]
        assert Counter(d.origin_topic for d in got) == {bus.name(b): 1 for b in bases}
        assert all(d.reason == "too_large" and d.payload_truncated and len(d.payload) == 4096
                   for d in got)
        assert worker.poll() is None
    finally:
        await big.stop()
        stop(worker, signal.SIGTERM)


async def test_reused_ids_absurd_numbers_and_unknown_links_are_refused_by_the_decider(
        bus: Bus, tmp_path: Path) -> None:
    worker = start_worker(bus.bootstrap, bus.prefix, tmp_path, "w")
    try:
        await bus.inventory()
        first = place("r1", "w1", bw=5, vcpus=1)
        await bus.send(T.REQUESTS_BASE, first, b"w1")
        reuse = place("r2", "w2", bw=5, vcpus=1)  # another order under r1's event id
        reuse.meta.event_id = first.meta.event_id
        await bus.send(T.REQUESTS_BASE, reuse, b"w2")
        # Wrapped as orders for the decider (`tandem.control`), as anyone may send them.
        huge = K.InventoryEvent(meta=new_meta("test"), link=K.Link(
            link_id="ams-fra", site_a="ams", site_b="fra", capacity_ab_mbps=1e308,
            capacity_ba_mbps=1e308, latency_ms=6.1))
        await bus.send(T.CONTROL_BASE, wrap(huge, inventory=huge), b"")
        ghost = L.LinkStateEvent(meta=new_meta("test"), link_id="no-such-link",
                                 state=L.OPER_STATE_DOWN)
        await bus.send(T.CONTROL_BASE, wrap(ghost, link_state=ghost), b"")
        nan = place("r3", "w3", bw=float("nan"))
        await bus.send(T.CONTROL_BASE, wrap(nan, request=nan), b"")
        await bus.send(T.LINK_STATE_BASE, link_down("ams-fra"), b"ams-fra")  # still decided
        await bus.send(T.REQUESTS_BASE, place("r4", "w4", bw=5, vcpus=1), b"w4")
        await bus.settled(app_id(bus.prefix))
        decisions = await bus.read(bus.name(T.DECISIONS_BASE), D.Decision)
        # Answers to orders (the link-down may also move w1: a reaction, not an answer).
        answered = Counter(d.request_id for d in decisions
                           if d.kind in (D.DECISION_KIND_PLACED, D.DECISION_KIND_REJECTED))
        assert answered["r1"] == 1 and answered["r4"] == 1
        assert "r2" not in answered and "r3" not in answered
        reasons = Counter(d.reason for d in await letters(bus))
        assert reasons == {"event_id_reused": 1, "out_of_range": 2, "unknown_reference": 1}
        inputs = await bus.read(bus.name(T.DECIDER_BASE), decider_pb2.DeciderInput)
        assert any(i.HasField("link_state") and i.link_state.link_id == "ams-fra" for i in inputs)
        report = await replay(bus.bootstrap, bus.prefix)
        assert report.ok, report
        assert not report.refused  # refused records never reach the decider log
        # The link-down after the poisonous record was folded: the decider reacted to it.
        decider = Decider()
        for r in inputs:
            decider.fold_record(r.SerializeToString(), 1e12)
        assert decider.topology.links["ams-fra"].oper_state.name == "DOWN"
    finally:
        stop(worker, signal.SIGTERM)


async def test_an_undecodable_link_state_record_yields_one_dead_letter(
        bus: Bus, tmp_path: Path) -> None:
    """It was dead-lettered by the link-state agent and again by the NOC mirror; the decider is
    its one reader now (and writes the mirror)."""
    worker = start_worker(bus.bootstrap, bus.prefix, tmp_path, "w")
    try:
        await bus.inventory()
        await bus.producer.send_and_wait(bus.name(T.LINK_STATE_BASE), key=b"x", value=b"\xff junk")
        await bus.settled(app_id(bus.prefix))
        got = [d for d in await letters(bus) if d.origin_topic == bus.name(T.LINK_STATE_BASE)]
        assert [(d.reason, d.consumer) for d in got] == [("undecodable", "decider")]
    finally:
        stop(worker, signal.SIGTERM)


def test_replay_of_a_hostile_log_reports_and_never_raises(kafka_bootstrap: str,
                                                          tandem_topics: str) -> None:
    import asyncio

    from aiokafka import AIOKafkaProducer

    async def write() -> None:
        p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await p.start()
        try:
            for value in (b"", b"\xff" * 40, b"\x0a" * 300_000):
                await p.send_and_wait(T.SPECS[T.DECIDER_BASE].name(tandem_topics), value)
            await p.send_and_wait(T.SPECS[T.DECISIONS_BASE].name(tandem_topics), b"\xff junk")
        finally:
            await p.stop()

    asyncio.run(write())
    run = subprocess.run([sys.executable, "-m", "tandem.cli", "replay", "--topic-prefix",
                          tandem_topics, "--broker", kafka_bootstrap],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert "Traceback" not in run.stderr, run.stderr
    assert "3 decider-log records refused" in run.stdout, run.stdout
    assert "1 records on the decisions topic are not decisions" in run.stdout, run.stdout


def test_bounded_fuzz_soak(kafka_bootstrap: str, tmp_path: Path) -> None:
    """`tandem bench fuzz`, bounded: 25 records of each bad class on each input topic."""
    out = tmp_path / "fuzz.json"
    run = subprocess.run([sys.executable, "-m", "tandem.cli", "bench", "fuzz", "--per-class", "25",
                          "--valid", "30", "--broker", kafka_bootstrap, "--out", str(out),
                          "--timeout", "240"],
                         capture_output=True, text=True, timeout=600, cwd=REPO)
    assert out.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["bad_records"] == 25 * 39
    assert r["dead_lettered_once"] == r["bad_records"], run.stdout[-4000:]
    assert r["dead_letters_unmatched"] == 0
    assert r["worker_exits"] == 0 and r["valid_lost"] == 0 and r["valid_duplicated"] == 0
    assert r["meets_target"], run.stdout[-4000:]
