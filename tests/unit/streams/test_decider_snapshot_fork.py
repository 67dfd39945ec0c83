"""The decider's snapshot head is encoded in a forked child (streams/agents/forked.py), so the
event loop goes on deciding meanwhile: the payload comes back whole (bigger than a pipe's
buffer), it is the state as it was at the fork whatever the parent changes afterwards, a failed
or cancelled child yields nothing, and the head a `DeciderMemory` writes later restores, with
the delta written at once, to the decider it was taken from."""

from __future__ import annotations

import os
import signal
import time
from types import SimpleNamespace

from tandem.decider import Decider
from tandem.events import new_meta
from tandem.services.demo_data import demo_federation
from tandem.snapshot import fingerprint, restore
from tandem.streams.agents.decider import ENCODE_TIMEOUT_S, DeciderMemory
from tandem.streams.agents.forked import Forked
from tandem.v1 import decider_pb2, inventory_pb2 as K, link_state_pb2 as L, workload_pb2 as W


def _never_done() -> bytes:
    """A child that stays busy until it is killed (it waits for a signal; SIGKILL ends it)."""
    while True:
        signal.pause()


def _child_gone(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


async def test_the_payload_comes_back_whole() -> None:
    big = bytes(range(256)) * 4096  # 1 MiB: many times a pipe's buffer
    child = Forked(lambda: big, "test")
    assert await child.wait() == big
    assert child.done() and child.result() == big


async def test_the_child_sees_the_state_as_it_was_at_the_fork() -> None:
    state = [1, 2, 3]
    child = Forked(lambda: bytes(state), "test")
    state.append(4)  # the parent goes on changing it
    assert await child.wait() == bytes([1, 2, 3])


async def test_a_failing_child_yields_nothing() -> None:
    def fail() -> bytes:
        raise RuntimeError("broken")

    child = Forked(fail, "test")
    assert await child.wait() is None


async def test_a_cancelled_child_is_killed_and_yields_nothing() -> None:
    child = Forked(_never_done, "test")
    pid = child.pid
    assert pid is not None
    child.cancel()
    assert await child.wait() is None
    assert child.done() and child.pid is None
    assert _child_gone(pid)


def _wrap(ev: object, at: float) -> bytes:
    which = {W.RequestEvent: "request", K.InventoryEvent: "inventory",
             L.LinkStateEvent: "link_state"}[type(ev)]
    return decider_pb2.DeciderInput(meta=new_meta("test", at=at),
                                    **{which: ev}).SerializeToString()


def _order(i: int, at: float) -> bytes:
    return _wrap(W.RequestEvent(
        meta=new_meta("t", at=at), request_id=f"r{i}",
        place=W.WorkloadRequest(tenant="t", workload_id=f"w{i}",
                                priority=W.PRIORITY_CLASS_STANDARD,
                                groups=[W.VmGroup(group_id="a", count=1, vcpus=1,
                                                  memory_gib=2)])), at)


def _memory() -> DeciderMemory:
    tandem = SimpleNamespace(settings=SimpleNamespace(topic_prefix="t.", broker="unused:9092"),
                             tables={})
    return DeciderMemory(tandem, workloads=None)


async def test_the_head_is_written_later_and_restores_the_decider_at_its_offset() -> None:
    now = time.time()
    mem = _memory()
    mem.decider = d = Decider()
    for ev in demo_federation():
        d.fold_record(_wrap(ev, now - 100), now - 100)
    for i in range(20):
        d.fold_record(_order(i, now - 50 + i), now - 50 + i)
    at_fork = fingerprint(d)
    outs = mem.snapshot_outputs(upto=123)
    assert [o.topic for o in outs] == [mem.snapshot_ids]  # the delta, in this transaction
    assert not mem.snapshot_due()  # one snapshot at a time
    for i in range(20, 25):  # the decider goes on while the child encodes
        d.fold_record(_order(i, now - 10 + i), now - 10 + i)
    assert mem.encoding is not None
    await mem.encoding[1].wait()
    heads = mem.finished_snapshot()
    assert [o.topic for o in heads] == [mem.snapshots] and heads[0].key == b"head"
    head = decider_pb2.DeciderSnapshot.FromString(heads[0].value or b"")
    delta = decider_pb2.DeciderSnapshot.FromString(outs[0].value or b"")
    assert (head.log_offset, delta.log_offset, delta.delta_from) == (123, 123, 0)
    assert head.fingerprint == at_fork != fingerprint(d)
    assert fingerprint(restore(head.blob, [delta.blob])) == at_fork
    assert mem.finished_snapshot() == [] and mem.encoding is None


async def test_a_stuck_child_is_killed_and_snapshots_go_on() -> None:
    mem = _memory()
    mem.decider = Decider()
    stuck = Forked(_never_done, "test")
    mem.encoding = (7, stuck, time.monotonic() - ENCODE_TIMEOUT_S - 1)  # started long ago
    assert mem.finished_snapshot() == []
    assert mem.encoding is None and stuck.done() and stuck.result() is None
    assert stuck.pid is None  # killed and reaped


async def test_a_reset_drops_the_head_being_encoded() -> None:
    mem = _memory()
    mem.decider = Decider()
    mem.snapshot_outputs(upto=7)
    assert mem.encoding is not None
    child = mem.encoding[1]
    mem.reset()
    assert mem.encoding is None and child.done() and child.result() is None
    assert child.pid is None  # killed and reaped
    assert mem.finished_snapshot() == []
