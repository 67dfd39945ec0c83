"""A capacity fade announced in advance (satellite link) triggers the reaction on time."""

from __future__ import annotations

import time

from tandem.events import new_meta
from tandem.inventory import inventory_key
from tandem.streams import topics as T
from tandem.streams.app import Tandem
from tandem.v1 import decider_pb2, decision_pb2
from tandem.v1 import inventory_pb2 as K
from tandem.v1 import workload_pb2 as W

from conftest import Bus  # type: ignore[import-not-found]


def federation(fade_start: float) -> list[K.InventoryEvent]:
    sites = [("x", "DE"), ("y", "FR"), ("z", "IT")]
    out = [K.InventoryEvent(meta=new_meta("test"), site=K.Site(
        site_id=s, jurisdiction=cc, capacity=K.ComputeCapacity(vcpus=64, memory_gib=256),
        state=K.SITE_STATE_ACTIVE)) for s, cc in sites]
    sat = K.Link(link_id="x-y-sat", site_a="x", site_b="y", capacity_ab_mbps=100,
                 capacity_ba_mbps=100, latency_ms=20, kind=K.LINK_KIND_SATELLITE,
                 jurisdictions=["DE", "FR"])
    w = sat.capacity_schedule.add(capacity_mbps=10)
    w.start.FromNanoseconds(int(fade_start * 1e9))
    w.end.FromNanoseconds(int((fade_start + 600) * 1e9))
    out.append(K.InventoryEvent(meta=new_meta("test"), link=sat))
    for lid, a, b in (("x-z", "x", "z"), ("z-y", "z", "y")):
        out.append(K.InventoryEvent(meta=new_meta("test"), link=K.Link(
            link_id=lid, site_a=a, site_b=b, capacity_ab_mbps=100, capacity_ba_mbps=100,
            latency_ms=30, kind=K.LINK_KIND_FIBRE, jurisdictions=[a.upper(), b.upper()])))
    return out


async def test_known_fade_moves_the_reservation_when_it_starts(worker: Tandem, bus: Bus) -> None:
    fade = time.time() + 6
    events = federation(fade)
    for ev in events:
        await bus.producer.send_and_wait(bus.name(T.INVENTORY_BASE), key=inventory_key(ev).encode(),
                                         value=ev.SerializeToString())
    await bus.wait_read(bus.name(T.DECIDER_BASE), decider_pb2.DeciderInput,
                        lambda xs: sum(x.HasField("inventory") for x in xs) >= len(events))
    req = W.RequestEvent(meta=new_meta("test"), request_id="sat-1", place=W.WorkloadRequest(
        tenant="t", workload_id="uplink", groups=[W.VmGroup(group_id="g", count=1, vcpus=2,
                                                            memory_gib=4)],
        demands=[W.TrafficDemand(demand_id="d", from_group="g", to_site="y", bandwidth_mbps=50)],
        rules=W.Rules(vm_jurisdictions=["DE"])))
    await bus.send(T.REQUESTS_BASE, req, b"uplink")
    [placed] = await bus.wait_read(bus.name(T.DECISIONS_BASE), decision_pb2.Decision,
                                   lambda ds: len(ds) >= 1)
    assert placed.kind == decision_pb2.DECISION_KIND_PLACED
    assert time.time() < fade, "the test machine was too slow to place before the fade"
    assert [p.link_ids for p in placed.paths] == [["x-y-sat"]]
    decisions = await bus.wait_read(bus.name(T.DECISIONS_BASE), decision_pb2.Decision,
                                    lambda ds: len(ds) >= 2, timeout=60)
    moved = decisions[1]
    assert moved.kind == decision_pb2.DECISION_KIND_REROUTED, moved
    assert [p.link_ids for p in moved.paths] == [["x-z", "z-y"]]
    inputs = await bus.read(bus.name(T.DECIDER_BASE), decider_pb2.DeciderInput)
    ticks = [i for i in inputs if i.HasField("tick")]
    assert ticks and "x-y-sat" in ticks[0].tick.reason
    assert moved.meta.time.seconds >= int(fade)  # decided at the fade's moment, not before
