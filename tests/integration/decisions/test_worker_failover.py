"""Workers as real processes (`tandem worker`): killed mid-stream, killed between sending a
batch's outputs and committing it, or two sharing partitions with one stopping — every request
still gets exactly one decision (and every command, alarm and dead letter is published once),
and replay matches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from itest_wait import until

from tandem.services.replay import replay
from tandem.streams import topics as T
from tandem.v1 import decision_pb2 as D

from conftest import Bus, place, release  # type: ignore[import-not-found]

N = 60


def start_worker(bootstrap: str, prefix: str, tmp: Path, name: str,
                 failpoints: str = "") -> subprocess.Popen[bytes]:
    env = {**os.environ, "TANDEM_KAFKA": bootstrap, "TANDEM_TOPIC_PREFIX": prefix,
           "TANDEM_APP_ID": app_id(prefix), "TANDEM_DATA_DIR": str(tmp / name),
           "TANDEM_FAILPOINTS": failpoints}
    log = open(tmp / f"{name}.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "tandem.cli", "worker", "--no-web"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)


def app_id(prefix: str) -> str:
    return f"{prefix}workers"


def stop(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


async def decided(bus: Bus, n: int, timeout: float = 120.0) -> list[D.Decision]:
    return await bus.wait_read(bus.name(T.DECISIONS_BASE), D.Decision,
                               lambda ds: len({d.request_id for d in ds}) >= n, timeout)


async def send_requests(bus: Bus, start: int, stop_: int) -> None:
    for i in range(start, stop_):
        # Small workloads: all fit, so every decision is a placement.
        await bus.send(T.REQUESTS_BASE, place(f"r{i}", f"w{i}", bw=5, vcpus=1), f"w{i}".encode())


def assert_once(decisions: list[D.Decision]) -> None:
    per_request = Counter(d.request_id for d in decisions)
    assert set(per_request) == {f"r{i}" for i in range(N)}
    dupes = {r: c for r, c in per_request.items() if c != 1}
    assert not dupes, f"requests decided more than once: {dupes}"


async def test_worker_killed_mid_stream_loses_and_duplicates_nothing(
        bus: Bus, tmp_path: Path) -> None:
    first = start_worker(bus.bootstrap, bus.prefix, tmp_path, "first")
    second = None
    try:
        await bus.inventory()
        await send_requests(bus, 0, N)
        await decided(bus, 10)
        first.send_signal(signal.SIGKILL)  # mid-stream: no goodbye, no commit
        first.wait(10)
        second = start_worker(bus.bootstrap, bus.prefix, tmp_path, "second")
        decisions = await decided(bus, N)
        await bus.settled(app_id(bus.prefix))  # anything duplicated late would be there now
        assert_once(await bus.read(bus.name(T.DECISIONS_BASE), D.Decision))
        assert all(d.kind == D.DECISION_KIND_PLACED for d in decisions)
        report = await replay(bus.bootstrap, bus.prefix)
        assert report.ok, report
    finally:
        stop(first, signal.SIGKILL)
        if second is not None:
            stop(second, signal.SIGTERM)


async def wait_log(path: Path, text: bytes, count: int = 1, timeout: float = 60.0) -> None:
    await until(lambda: path.read_bytes().count(text) >= count, f"{path.name}: {text!r}", timeout)


async def test_two_workers_share_partitions_and_survive_a_rebalance(
        bus: Bus, tmp_path: Path) -> None:
    a = start_worker(bus.bootstrap, bus.prefix, tmp_path, "a")
    b = None
    try:
        await bus.inventory()
        await send_requests(bus, 0, N // 3)
        await decided(bus, 5)
        b = start_worker(bus.bootstrap, bus.prefix, tmp_path, "b")
        # Both in the group, partitions shared, before one leaves.
        await wait_log(tmp_path / "b.log", b"decider: group joined")
        await send_requests(bus, N // 3, 2 * N // 3)
        await decided(bus, 2 * N // 3)
        stop(a, signal.SIGTERM)  # a clean stop: its partitions move to b
        await send_requests(bus, 2 * N // 3, N)
        await decided(bus, N)
        await bus.settled(app_id(bus.prefix))
        assert_once(await bus.read(bus.name(T.DECISIONS_BASE), D.Decision))
        # One of them decided at a time, and b took the decider over once a left (if a held it).
        a_log, b_log = (tmp_path / "a.log").read_bytes(), (tmp_path / "b.log").read_bytes()
        assert b"decider: taken over" in a_log + b_log
        assert b_log.count(b"decider: taken over") >= 1
        report = await replay(bus.bootstrap, bus.prefix)
        assert report.ok, report
    finally:
        stop(a, signal.SIGKILL)
        if b is not None:
            stop(b, signal.SIGTERM)


@pytest.mark.parametrize("failpoint,folded_first", [
    ("decider:tandem.decider:after_send:1", False),  # log records and outputs sent
    ("decider:tandem.decider:before_commit:1", False),  # input offsets added too
    ("decider:tandem.decider:after_send:2", True),  # a batch of orders, the inventory committed
])
async def test_killed_inside_a_transaction_publishes_every_output_once(
        bus: Bus, tmp_path: Path, failpoint: str, folded_first: bool) -> None:
    """A worker dies (exit 137, as if SIGKILLed) after sending a batch's outputs and before
    committing them; the next worker re-processes the batch: every decision, SDN and compute
    command, alarm and dead letter is on its topic exactly once."""
    from tandem.inventory import inventory_key
    from tandem.services.demo_data import demo_federation
    from tandem.v1 import alarms_pb2, commands_pb2

    first = start_worker(bus.bootstrap, bus.prefix, tmp_path, "first", failpoints=failpoint)
    second = None
    try:
        if folded_first:  # the first transaction is the inventory's: the failpoint is later
            await bus.inventory()
        else:  # the failpoint may end the first worker while it folds the inventory (the
            # orders come after it in every batch that holds both)
            for ev in demo_federation():
                await bus.send(T.INVENTORY_BASE, ev, inventory_key(ev).encode())
        for i in range(N):
            await bus.send(T.REQUESTS_BASE, place(f"r{i}", f"w{i}", bw=5, vcpus=1),
                           f"w{i}".encode())
            if i % 20 == 0:  # bad records among them: each must yield one dead letter
                await bus.producer.send_and_wait(bus.name(T.REQUESTS_BASE), key=b"bad",
                                                 value=b"\xff not a request %d" % i)
        assert first.wait(120) == 137, "the failpoint was not reached"
        second = start_worker(bus.bootstrap, bus.prefix, tmp_path, "second")
        await decided(bus, N)
        await bus.settled(app_id(bus.prefix))
        assert_once(await bus.read(bus.name(T.DECISIONS_BASE), D.Decision))
        letters = await bus.read(bus.name(T.DEAD_LETTERS_BASE), alarms_pb2.DeadLetter)
        origins = Counter((d.origin_topic, d.origin_partition, d.origin_offset) for d in letters)
        assert len(origins) == 3 and set(origins.values()) == {1}, origins
        sites = {p.site_id for d in await bus.read(bus.name(T.DECISIONS_BASE), D.Decision)
                 for p in d.placements}
        commands: Counter[str] = Counter()
        for site in sites:
            for c in await bus.read(T.compute_commands_topic(site, bus.prefix),
                                    commands_pb2.ComputeCommand):
                commands[c.command_id] += 1
            for sc in await bus.read(T.sdn_commands_topic(site, bus.prefix),
                                     commands_pb2.SdnCommand):
                commands[sc.command_id] += 1
        assert commands and set(commands.values()) == {1}, commands.most_common(3)
        report = await replay(bus.bootstrap, bus.prefix)
        assert report.ok, report
    finally:
        stop(first, signal.SIGKILL)
        if second is not None:
            stop(second, signal.SIGTERM)


async def test_a_takeover_restores_the_snapshot_and_reads_only_the_log_after_it(
        bus: Bus, tmp_path: Path) -> None:
    """Past a snapshot (every SNAPSHOT_EVERY inputs), a worker taking over restores it and folds only
    the tail of the decider log: the log line says how much, the first worker's answers are
    not given twice, and the new worker decides what comes next."""
    import re

    from tandem.streams.agents.decider import SNAPSHOT_EVERY

    first = start_worker(bus.bootstrap, bus.prefix, tmp_path, "first")
    second = None
    try:
        await bus.inventory()
        topic = bus.name(T.REQUESTS_BASE)
        for i in range(560):  # 1,120 inputs: an order and its release each
            w = f"s{i}"
            await bus.producer.send(topic, place(f"o{i}", w, bw=5, vcpus=1).SerializeToString(),
                                    key=w.encode())
            await bus.producer.send(topic, release(f"x{i}", w).SerializeToString(),
                                    key=w.encode())
        await bus.producer.flush()
        await bus.wait_read(bus.name(T.DECISIONS_BASE), D.Decision,
                            lambda ds: len({d.request_id for d in ds}) >= 1120, 180)
        for i in range(5):  # a tail after the snapshot
            await bus.send(T.REQUESTS_BASE, place(f"t{i}", f"t{i}", bw=5, vcpus=1),
                           f"t{i}".encode())
        await bus.wait_read(bus.name(T.DECISIONS_BASE), D.Decision,
                            lambda ds: {f"t{i}" for i in range(5)} <= {d.request_id for d in ds})
        stop(first, signal.SIGKILL)
        second = start_worker(bus.bootstrap, bus.prefix, tmp_path, "second")
        await bus.send(T.REQUESTS_BASE, place("o0", "s0", bw=5, vcpus=1), b"s0")  # a repeat
        await bus.send(T.REQUESTS_BASE, place("after", "after", bw=5, vcpus=1), b"after")
        decisions = await bus.wait_read(bus.name(T.DECISIONS_BASE), D.Decision,
                                        lambda ds: any(d.request_id == "after" for d in ds), 120)
        log = (tmp_path / "second.log").read_text()
        m = re.search(r"decider: state rebuilt up to offset (\d+): snapshot at offset (\d+) "
                      r"restored, then (\d+) inputs folded \(\d+ refused; (\d+) log records "
                      r"read\)", log)
        assert m, f"no takeover from a snapshot in the second worker's log:\n{log[-3000:]}"
        upto, base, folded, read = map(int, m.groups())
        assert base >= SNAPSHOT_EVERY and 0 < folded == upto - base < SNAPSHOT_EVERY, m.group(0)
        # only the tail was read (offsets count transaction markers too: fewer records)
        assert 0 < read <= folded, m.group(0)
        per_request = Counter(d.request_id for d in decisions)
        assert per_request["o0"] == 1 and per_request["after"] == 1
        assert max(per_request.values()) == 1
    finally:
        stop(first, signal.SIGKILL)
        if second is not None:
            stop(second, signal.SIGTERM)
