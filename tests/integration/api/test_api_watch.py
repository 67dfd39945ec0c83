"""WatchEvents against a real server, broker and worker: decisions and statuses as the worker
publishes them, filtered by kind, tenant and site, and resumed from an event's position."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from api_itest_util import details, order

from itest_wait import until
from tandem.events import new_meta
from tandem.streams import topics as T
from tandem.v1 import api_pb2, decision_pb2, link_state_pb2, telemetry_pb2

D = decision_pb2
pytestmark = pytest.mark.integration


class Watcher:
    """A WatchEvents stream read in the background into a list (tests wait on the list)."""

    def __init__(self, api, call: api_pb2.WatchEventsRequest) -> None:  # type: ignore[no-untyped-def]
        self.got: list[api_pb2.WatchEvent] = []
        self.stream = api.stub.WatchEvents(call, timeout=180)
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for ev in self.stream:
            self.got.append(ev)

    def ids(self) -> list[str]:
        return [_id(e) for e in self.got]

    async def close(self) -> None:
        self.stream.cancel()
        try:
            await self.task
        except (asyncio.CancelledError, grpc.aio.AioRpcError):
            pass


def _id(ev: api_pb2.WatchEvent) -> str:
    which = ev.WhichOneof("event")
    if which == "utilisation":
        return f"util/{ev.utilisation.link_id}/{ev.utilisation.utilisation_mbps}"
    return getattr(ev, which).meta.event_id  # type: ignore[arg-type]


@pytest.fixture
async def watchers() -> AsyncIterator[list[Watcher]]:
    opened: list[Watcher] = []
    yield opened
    for w in opened:
        await w.close()


async def _started(api, w: Watcher) -> None:  # type: ignore[no-untyped-def]
    # The stream is open once the server sent its headers (its consumer is positioned).
    await asyncio.wait_for(w.stream.initial_metadata(), 30)


async def test_decisions_and_statuses_by_tenant_then_resumed_from_a_position(
        api, watchers) -> None:  # type: ignore[no-untyped-def]
    kinds = [api_pb2.EVENT_KIND_DECISION, api_pb2.EVENT_KIND_WORKLOAD_STATUS]
    acme = Watcher(api, api_pb2.WatchEventsRequest(kinds=kinds, tenant="acme"))
    everyone = Watcher(api, api_pb2.WatchEventsRequest(kinds=kinds))
    watchers += [acme, everyone]
    for w in (acme, everyone):
        await _started(api, w)
    a = await api.stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
        workload=order("wa"), idempotency_key="wa"), timeout=60)
    g = await api.stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
        workload=order("wg", tenant="globex"), idempotency_key="wg"), timeout=60)
    # An acme order keyed to globex's partition (decisions and statuses are keyed by workload
    # id, Kafka's default partitioner): once acme's stream has it, it has read past globex's.
    part = DefaultPartitioner()
    assert part(b"wa-3", [0, 1, 2], [0, 1, 2]) == part(b"wg", [0, 1, 2], [0, 1, 2])
    a3 = await api.stub.PlaceAndConnect(api_pb2.PlaceAndConnectRequest(
        workload=order("wa-3", bw=50), idempotency_key="wa-3"), timeout=60)
    a_id, g_id = a.decision.meta.event_id, g.decision.meta.event_id

    def seen(w: Watcher, decision_id: str) -> bool:
        return any(e.WhichOneof("event") == "decision" and e.decision.meta.event_id == decision_id
                   for e in w.got) and any(
            e.WhichOneof("event") == "status" and e.status.decision_id == decision_id
            for e in w.got)

    await until(lambda: seen(everyone, a_id) and seen(everyone, g_id),
                "both decisions and their statuses on the unfiltered stream", timeout=60)
    await until(lambda: seen(acme, a_id) and seen(acme, a3.decision.meta.event_id),
                "acme's decisions and statuses", timeout=60)
    # acme's stream read globex's decision and status and left them out.
    assert {"wa", "wa-3"} <= {e.decision.workload_id or e.status.workload_id for e in acme.got}
    assert all((e.decision.tenant or e.status.tenant) == "acme" for e in acme.got)
    mine = set(acme.ids())  # every one of them on the unfiltered stream too (perhaps later)
    await until(lambda: mine <= set(everyone.ids()), "acme's events on the unfiltered stream",
                timeout=60)
    got = next(e for e in everyone.got if e.WhichOneof("event") == "decision"
               and e.decision.meta.event_id == a_id)
    assert got.decision.SerializeToString() == a.decision.SerializeToString()
    assert got.kind == api_pb2.EVENT_KIND_DECISION and got.time > 0
    status = next(e for e in acme.got if e.WhichOneof("event") == "status")
    assert status.order_state != api_pb2.SERVICE_ORDER_STATE_UNSPECIFIED

    # Resume after the first event: exactly the events that followed it come again, in the
    # same order per partition, and not the first one.
    first = everyone.got[0]
    resumed = Watcher(api, api_pb2.WatchEventsRequest(kinds=kinds, position=first.position))
    watchers.append(resumed)
    after = everyone.ids()[1:]
    await until(lambda: set(after) <= set(resumed.ids()),
                lambda: f"the {len(after)} events after the first (got {len(resumed.ids())})",
                timeout=60)
    assert _id(first) not in resumed.ids()
    # From the start of the topics: everything, the first event included.
    replay = Watcher(api, api_pb2.WatchEventsRequest(kinds=kinds, from_start=True))
    watchers.append(replay)
    await until(lambda: set(everyone.ids()) <= set(replay.ids()), "a replay from the start",
                timeout=60)


async def test_link_state_and_utilisation_by_site(api, watchers) -> None:  # type: ignore[no-untyped-def]
    kinds = [api_pb2.EVENT_KIND_LINK_STATE, api_pb2.EVENT_KIND_UTILISATION]
    ams = Watcher(api, api_pb2.WatchEventsRequest(kinds=kinds, site_id="ams", from_start=True))
    watchers.append(ams)
    await _started(api, ams)
    producer = AIOKafkaProducer(bootstrap_servers=api.bootstrap, acks="all")
    await producer.start()
    try:
        # par-lon (not ams's) first, then ams-fra, on one partition each: once ams-fra's
        # events arrive, par-lon's were read before them and filtered out.
        for lid, util in (("par-lon", 11.0), ("ams-fra", 22.0)):
            ls = link_state_pb2.LinkStateEvent(meta=new_meta("test"), link_id=lid,
                                               state=link_state_pb2.OPER_STATE_DEGRADED,
                                               cause="test")
            await producer.send_and_wait(T.SPECS[T.LINK_STATE_BASE].name(api.prefix),
                                         ls.SerializeToString(), key=lid.encode(), partition=0)
            s = telemetry_pb2.TelemetrySample(meta=new_meta("test"), link=telemetry_pb2.LinkSample(
                link_id=lid, from_site=lid.split("-")[0], utilisation_mbps=util))
            await producer.send_and_wait(T.SPECS[T.TELEMETRY_BASE].name(api.prefix),
                                         s.SerializeToString(), key=lid.encode(), partition=0)
    finally:
        await producer.stop()

    def kinds_seen() -> set[int]:
        return {e.kind for e in ams.got}

    await until(lambda: kinds_seen() == set(kinds), "ams-fra's link state and utilisation",
                timeout=60)
    links = {e.link_state.link_id or e.utilisation.link_id for e in ams.got}
    assert links == {"ams-fra"}
    util = next(e for e in ams.got if e.kind == api_pb2.EVENT_KIND_UTILISATION)
    assert util.utilisation.utilisation_mbps == 22.0


async def test_bad_filters_and_positions_name_their_field(api) -> None:  # type: ignore[no-untyped-def]
    for call, field in ((api_pb2.WatchEventsRequest(position="nonsense"), "position"),
                        (api_pb2.WatchEventsRequest(site_id="atlantis"), "site_id"),
                        (api_pb2.WatchEventsRequest(kinds=[42]), "kinds")):  # type: ignore[list-item]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in api.stub.WatchEvents(call, timeout=20):
                pass
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, call
        [bad] = [d for d in details(err.value) if d.DESCRIPTOR.name == "BadRequest"]
        assert [v.field for v in bad.field_violations] == [field]


async def test_streams_beyond_the_servers_limit_are_resource_exhausted(
        api, watchers) -> None:  # type: ignore[no-untyped-def]
    api.server.servicer.max_streams = 1
    first = Watcher(api, api_pb2.WatchEventsRequest(kinds=[api_pb2.EVENT_KIND_ALARM]))
    watchers.append(first)
    await _started(api, first)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in api.stub.WatchEvents(api_pb2.WatchEventsRequest(), timeout=20):
            pass
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await first.close()
    await until(lambda: api.server.servicer.streams == 0, "the first stream closed", timeout=30)
    second = Watcher(api, api_pb2.WatchEventsRequest(kinds=[api_pb2.EVENT_KIND_ALARM]))
    watchers.append(second)
    await _started(api, second)  # a slot is free again
