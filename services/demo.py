"""`make demo`: the whole loop on the local broker, told as it happens.

1. A small European federation (six sites, five jurisdictions; fibre, MPLS, a gateway LAN and
   a satellite link) is published as inventory events, plus one malformed record.
2. The Faust stream processors fold it into the live topology (read back and printed).
3. Four workloads are ordered: each gets one joint decision — sites *and* paths with reserved
   bandwidth — or a rejection naming the failed constraint, with the alternatives weighed.
4. The busiest WAN link fails: the decider chooses, per affected workload, between rerouting,
   migrating, both or preempting, and says why; commands for each site's SDN and compute units
   follow.
5. The decision log is replayed from offset 0 in a fresh decider and compared.
6-10. Act two (`tandem.services.demo_loop`, root only): the whole loop *acting* on an emulated
   WAN — an order through the gRPC API held for an approval, approved, carried out by SDN and
   compute units, traffic across the reserved path, a link failure rerouted, the release.

Each run uses its own topic prefix (`demo-<time>.`), so it can be run any number of times;
topics of earlier demo runs are deleted first.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any
from collections import Counter

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from tandem.events import new_meta
from tandem.inventory import inventory_key
from tandem.services.demo_data import demo_federation, demo_requests
from tandem.services.kafka_admin import BrokerUnavailable, delete_topics, ensure_topics
from tandem.services.render import render_decision, render_inventory, table
from tandem.streams import topics as T
from tandem.streams.readback import read_all_partitions
from tandem.streams.settings import Settings
from tandem.v1 import decision_pb2, link_state_pb2

log = logging.getLogger(__name__)


# Only what an earlier demo run created (`demo-<unix time>.…`), never anybody else's topics.
_DEMO_TOPIC = re.compile(r"^demo-\d{9,}(-wan)?\.")


async def _old_demo_topics(broker: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        return [t for t in await admin.list_topics() if _DEMO_TOPIC.match(t)]
    finally:
        await admin.close()


async def wait_for(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    """Until `await pred()` holds (asked every 0.1 s), or TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while not await pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


async def _start(app, settings: Settings, timeout: float) -> None:  # type: ignore[no-untyped-def]
    """Start the stream worker, or fail saying why: never wait forever."""
    from tandem.cli import UserError

    try:
        await asyncio.wait_for(app.start(), timeout)
    except asyncio.TimeoutError:
        raise UserError(
            f"the stream worker did not finish starting within {timeout:.0f} s (its consumer "
            f"group did not form; the log above says what it waited for)") from None
    except OSError as exc:  # the live view's port
        raise UserError(f"the stream worker could not start: {exc} (is a 'tandem worker' "
                        f"using port {settings.web_port}? choose another with --web-port)") from None


async def _stop(app, producer: AIOKafkaProducer, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Stop the worker and the producer; a stop that does not finish is reported, not awaited
    forever (Ctrl-C must end the demo)."""
    for what, stop in (("stream worker", app.stop), ("producer", producer.stop)):
        try:
            await asyncio.wait_for(stop(), timeout)
        except asyncio.TimeoutError:
            log.error("the %s did not stop within %.0f s; leaving it", what, timeout)


def decided_through(tandem: Any, topic: str, partition: int) -> int:
    """The next offset of an input partition the decider on this worker will fold: records
    below it are decided and their outputs committed (-1 while it does not hold the decider)."""
    return int(tandem.decider_loop.committed_position(topic, partition))


async def run_demo(settings: Settings, timeout: float = 60.0, hold: bool = False,
                   wan: bool = True) -> int:
    from dataclasses import replace

    from tandem.cli import UserError
    from tandem.services.replay import replay
    from tandem.streams.app import create_app

    for noisy in ("faust", "mode", "aiokafka", "tandem.services.kafka_admin",
                  "tandem.streams.agents.decider", "tandem.streams.agents.telemetry"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    prefix = settings.topic_prefix or f"demo-{int(time.time())}."
    settings = replace(settings, topic_prefix=prefix, app_id=f"{prefix}tandem")
    broker = settings.broker
    try:
        old = [t for t in await _old_demo_topics(broker) if not t.startswith(prefix)]
        if old:
            await delete_topics(broker, old)
        await ensure_topics(broker, T.core_topics(prefix))
    except BrokerUnavailable as exc:
        raise UserError(f"{exc} (start it with 'tandem infra up' or 'make kafka-up')") from None
    name = lambda base: T.SPECS[base].name(prefix)  # noqa: E731
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", enable_idempotence=True)
    await producer.start()
    tandem = create_app(settings)
    try:
        print(f"== 0. starting the stream processors (Faust worker, consumer group "
              f"{settings.app_id!r}) on {broker}", flush=True)
        started = time.monotonic()
        await _start(tandem.app, settings, timeout)
        print(f"   ready in {time.monotonic() - started:.1f} s\n", flush=True)
        # 1-2. inventory → Kafka → Faust → table.
        events = demo_federation()
        print(f"== 1. publishing {len(events)} inventory events (+1 malformed) to "
              f"{name(T.INVENTORY_BASE)} on {broker}")
        for ev in events:
            await producer.send(name(T.INVENTORY_BASE), key=inventory_key(ev).encode(),
                                value=ev.SerializeToString())
        await producer.send(name(T.INVENTORY_BASE), key=b"site/bad", value=b"\x08\x96\x01oops\xff")
        await producer.flush()
        table_ = tandem.tables["inventory"]
        wanted = {inventory_key(ev) for ev in events}

        async def folded() -> bool:
            runner = tandem.decider
            return (wanted <= set(table_.keys()) and runner.decider is not None
                    and runner.decider.count >= len(events)
                    and len(await read_all_partitions(broker, name(T.DEAD_LETTERS_BASE))) >= 1)

        await wait_for(folded, timeout, "the inventory fold")
        print("\n== 2. topology folded by the stream processors, read back from the inventory "
              "table:\n")
        print(render_inventory({k: table_[k] for k in sorted(table_.keys())}))
        letters = await read_all_partitions(broker, name(T.DEAD_LETTERS_BASE))
        print(f"\n   dead letters: {len(letters)} (the malformed record, kept with its origin)")

        # 3. workload requests → joint decisions.
        requests = demo_requests()
        print(f"\n== 3. ordering {len(requests)} workloads on {name(T.REQUESTS_BASE)}\n")
        for ev in requests:
            await producer.send(name(T.REQUESTS_BASE), key=ev.place.workload_id.encode(),
                                value=ev.SerializeToString())
        await producer.flush()

        async def decisions() -> list[decision_pb2.Decision]:
            return [decision_pb2.Decision.FromString(r.value)
                    for r in await read_all_partitions(broker, name(T.DECISIONS_BASE))]

        async def all_decided() -> bool:
            return len({d.request_id for d in await decisions()}) >= len(requests)

        await wait_for(all_decided, timeout, "the decisions")
        first = sorted(await decisions(), key=lambda d: d.request_id)
        for d in first:
            print(render_decision(d))
            print()

        # 4. the busiest link fails → reactions.
        used = Counter(l for d in first for p in d.paths for l in p.link_ids)
        busiest = sorted(used.items(), key=lambda t: (-t[1], t[0]))[0][0]
        print(f"== 4. link {busiest} (carrying {used[busiest]} reservations) goes DOWN\n")
        down = link_state_pb2.LinkStateEvent(meta=new_meta("demo/noc"), link_id=busiest,
                                             state=link_state_pb2.OPER_STATE_DOWN,
                                             cause="fibre cut (demo)")
        sent = await producer.send_and_wait(name(T.LINK_STATE_BASE), key=busiest.encode(),
                                            value=down.SerializeToString())

        async def reacted() -> bool:
            # The decider's transaction for the link-state event is committed (its decisions
            # are then readable).
            return decided_through(tandem, name(T.LINK_STATE_BASE), sent.partition) > sent.offset

        await wait_for(reacted, timeout, "the reaction")
        after = await decisions()
        reactions = [d for d in after if d.meta.event_id not in {x.meta.event_id for x in first}]
        if not reactions:
            print("   no reservation needed to move")
        for d in reactions:
            print(render_decision(d))
            print()
        rows = []
        for sid in sorted(tandem.sites_with_topics):
            n = len(await read_all_partitions(broker, T.sdn_commands_topic(sid, prefix)))
            c = len(await read_all_partitions(broker, T.compute_commands_topic(sid, prefix)))
            if n or c:
                rows.append((sid, n, c))
        print("   commands published per site (make-before-break order within each site):")
        print("   " + table(("site", "SDN commands", "compute commands"), rows).replace("\n", "\n   "))
        # 5. replay (the worker still runs: replay only reads the logs).
        rep = await replay(broker, prefix)
        print(f"\n== 5. replay: {rep.inputs} decider inputs folded again from offset 0 in "
              f"{rep.seconds:.2f} s: {rep.matched}/{rep.derived} decisions identical to the log"
              + ("" if rep.ok else f"; FIRST DIVERGENCE: {rep.first_divergence}"))
        print(f"\nTopics of this run carry the prefix {prefix!r}; e.g. read the decisions with "
              f"`tandem replay --topic-prefix {prefix}`.", flush=True)
        if hold:
            print("\n   holding: the stream processors keep running (Ctrl-C ends the demo)",
                  flush=True)
            await asyncio.Event().wait()
    finally:
        await _stop(tandem.app, producer)
    if not rep.ok:
        return 1
    if wan and not hold:  # after act one's worker stopped: one stream processor at a time
        from tandem.services.demo_loop import run_loop

        await run_loop(broker, time.time(), max(timeout, 90.0))
    return 0
