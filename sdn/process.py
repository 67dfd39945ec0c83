"""The control-unit process: os-ken's AppManager (native hub threads) started from our own
entry point, and the Kafka side (aiokafka, asyncio in the main thread) of `ControlUnit`.

Commands: `tandem.sdn.commands.<site>` replayed from offset 0 (consumer group
`tandem-sdn-<site>`, committed offsets mark what was acknowledged), then live, in fetch-sized
batches. Inventory: `tandem.inventory` from offset 0 into the unit's port book; the unit is
told when it is read up to the end it had at start (`ControlUnit.inventory_ready`). Out: acks
(keyed by workload id), telemetry, link state, LLDP observations — handed over from the
unit's threads with `loop.call_soon_threadsafe` and published in batches
(`kafka_io.send_many`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from tandem.sdn.unit import MAX_BATCH, ControlUnit, Job, UnitConfig
from tandem.v1 import commands_pb2 as c
from tandem.v1 import inventory_pb2 as inv

log = logging.getLogger("tandem.sdn.process")


async def run_kafka(unit: ControlUnit, bootstrap: str, prefix: str | None,
                    ready: asyncio.Event | None = None) -> None:
    """Consume the site's command topic (replay from 0, then live), produce acks and events."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    from tandem.services.kafka_admin import ensure_topics
    from tandem.streams import topics as T

    site = unit.site
    cmd_topic = T.sdn_commands_topic(site, prefix)
    names = {"ack": T.SPECS[T.SDN_ACKS_BASE].name(prefix),
             "telemetry": T.SPECS[T.TELEMETRY_BASE].name(prefix),
             "link_state": T.SPECS[T.LINK_STATE_BASE].name(prefix),
             "inventory": T.SPECS[T.INVENTORY_BASE].name(prefix)}
    await ensure_topics(bootstrap, T.core_topics(prefix) + [(cmd_topic, T.SDN_COMMANDS_SPEC)])
    loop = asyncio.get_running_loop()
    outbox: asyncio.Queue[list[tuple[str, str, Any]]] = asyncio.Queue()
    commits: asyncio.Queue[int] = asyncio.Queue()
    unit.publish = lambda kind, key, msg: loop.call_soon_threadsafe(
        outbox.put_nowait, [(kind, key, msg)])
    unit.publish_many = lambda items: loop.call_soon_threadsafe(outbox.put_nowait, list(items))
    unit.on_acked = lambda off: loop.call_soon_threadsafe(commits.put_nowait, off)

    from tandem.streams import compat

    compat.apply_all()  # workarounds of aiokafka behaviour, at this process's start
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1,
                                client_id=f"tandem-sdn-{site}")
    group = f"tandem-sdn-{site}"
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                isolation_level="read_committed",
                                client_id=f"tandem-sdn-{site}", fetch_max_wait_ms=20)
    inv_consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                    auto_offset_reset="earliest", fetch_max_wait_ms=200,
                                    isolation_level="read_committed")
    await producer.start()
    for name in names.values():  # metadata now, not on the first ack of a reroute
        await producer.partitions_for(name)
    await consumer.start()
    await inv_consumer.start()
    tp = TopicPartition(cmd_topic, 0)
    consumer.assign([tp])
    committed = await consumer.committed(tp) or 0
    end = (await consumer.end_offsets([tp]))[tp]
    await consumer.seek_to_beginning(tp)
    inv_tp = TopicPartition(names["inventory"], 0)
    inv_consumer.assign([inv_tp])
    await inv_consumer.seek_to_beginning(inv_tp)
    inv_end = (await inv_consumer.end_offsets([inv_tp]))[inv_tp]
    if inv_end == 0:
        unit.inventory_ready.set()
    log.info("site %s: replaying %s offsets 0..%d (acknowledged below %d)", site, cmd_topic,
             end, committed)
    if end == 0:
        unit.jobs.put(Job("replay_done"))
    if ready is not None:
        ready.set()

    async def pump_out() -> None:
        from tandem.sdn.kafka_io import send_many

        while True:
            items = await outbox.get()
            while not outbox.empty():  # everything the threads handed over meanwhile
                items += outbox.get_nowait()
            await send_many(producer, [(names[k], key.encode(), m.SerializeToString())
                                       for k, key, m in items], wait=False)

    async def pump_commits() -> None:
        while True:
            off = await commits.get()
            while not commits.empty():
                off = max(off, commits.get_nowait())
            await consumer.commit({tp: off + 1})

    async def pump_inventory() -> None:
        """Fold the inventory into the unit; once read up to its end at start, say so (the
        worker holds back crossings that do not resolve until then, boundedly)."""
        site_dpids: dict[str, int] = {}
        while True:
            fetched = await inv_consumer.getmany(inv_tp, timeout_ms=1000, max_records=1000)
            for rec in fetched.get(inv_tp, []):
                try:
                    ev = inv.InventoryEvent.FromString(rec.value)
                except Exception:
                    continue
                unit.learn_inventory(ev, site_dpids)
            if not unit.inventory_ready.is_set() and await inv_consumer.position(inv_tp) >= inv_end:
                log.info("site %s: inventory read (%d records at start)", site, inv_end)
                unit.inventory_ready.set()

    async def pump_commands() -> None:
        while True:
            fetched = await consumer.getmany(tp, timeout_ms=1000, max_records=MAX_BATCH)
            received = time.perf_counter()
            live: list[Job] = []
            for rec in fetched.get(tp, []):
                try:
                    cmd = c.SdnCommand.FromString(rec.value)
                except Exception as exc:
                    log.warning("offset %d of %s is not an SdnCommand (%s): skipped",
                                rec.offset, cmd_topic, exc)
                    cmd = None
                if cmd is not None and cmd.site_id and cmd.site_id != site:
                    log.warning("command %s is for site %s, not %s: skipped", cmd.command_id,
                                cmd.site_id, site)
                    cmd = None
                replay = rec.offset < end
                if cmd is None:
                    pass  # committed with the next acknowledged command
                elif replay:
                    unit.jobs.put(Job("command", cmd=cmd, offset=rec.offset, replay=True,
                                      needs_ack=rec.offset >= committed, received=received))
                else:
                    live.append(Job("command", cmd=cmd, offset=rec.offset, received=received))
                if replay and rec.offset == end - 1:
                    unit.jobs.put(Job("replay_done"))
            if live:
                unit.jobs.put(Job("batch", batch=live))

    tasks = [asyncio.create_task(t()) for t in (pump_out, pump_commits, pump_inventory,
                                                 pump_commands)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        # flush what the threads handed over before we stop
        while not outbox.empty():
            for kind, key, msg in outbox.get_nowait():
                await producer.send(names[kind], msg.SerializeToString(), key=key.encode())
        await producer.stop()
        await consumer.stop()
        await inv_consumer.stop()


def start_osken(of_port: int, listen_host: str = "127.0.0.1") -> Any:
    """Start os-ken's AppManager with our app (native hub, daemon threads); returns the app."""
    from os_ken import cfg
    from os_ken.base import app_manager
    from os_ken.controller import controller  # noqa: F401  (registers the ofp-* options)

    import socket

    # os-ken listens in a thread of its own and only logs a bind failure: check first.
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((listen_host, of_port))
    except OSError as exc:
        raise OSError(f"cannot listen for OpenFlow on {listen_host}:{of_port}: {exc}") from None
    finally:
        probe.close()
    cfg.CONF([], project="os_ken")
    cfg.CONF.set_override("ofp_tcp_listen_port", of_port)
    cfg.CONF.set_override("ofp_listen_host", listen_host)
    mgr = app_manager.AppManager.get_instance()
    mgr.load_apps(["tandem.sdn.app"])
    contexts = mgr.create_contexts()
    mgr.instantiate_apps(**contexts)  # starts the apps' threads (and the OpenFlow listener)
    return mgr.applications["TandemSdnApp"]


def serve(site: str, bootstrap: str, of_port: int, prefix: str | None = None,
          cfg: UnitConfig | None = None, layout: Any = None) -> int:
    """Run the control unit until SIGINT/SIGTERM. os-ken runs in daemon threads started from
    a daemon thread (the native hub's threads inherit that), asyncio in the main thread."""
    import signal
    import sys

    from tandem.sdn.app import TandemSdnApp

    # Several threads share the GIL here (OpenFlow receive/send, the app's event loop, the
    # worker, asyncio). A barrier reply crosses three of them; with the default 5 ms switch
    # interval each hand-over can wait that long behind a busy thread.
    sys.setswitchinterval(0.0005)

    unit = ControlUnit(cfg or UnitConfig(site), publish=lambda *_: None, on_acked=lambda _: None)
    if layout is not None:
        unit.learn_layout(layout)
    TandemSdnApp.unit = unit
    boot: dict[str, Any] = {}

    def boot_osken() -> None:
        try:
            boot["app"] = start_osken(of_port)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            boot["error"] = exc

    t = threading.Thread(target=boot_osken, name="osken-boot", daemon=True)
    t.start()
    t.join(10)
    if "error" in boot:
        err = boot["error"]
        raise err if isinstance(err, OSError) else RuntimeError(
            f"os-ken could not start on port {of_port}: {err}")
    unit.start()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        kafka = asyncio.create_task(run_kafka(unit, bootstrap, prefix))
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({kafka, waiter}, return_when=asyncio.FIRST_COMPLETED)
        unit.stop()
        if kafka in done:
            kafka.result()  # raises what killed the Kafka side
        kafka.cancel()
        try:
            await kafka
        except asyncio.CancelledError:
            pass

    asyncio.run(main())
    log.info("control unit of %s stopped", site)
    for th in threading.enumerate():
        if th is not threading.current_thread() and not th.daemon:
            log.debug("non-daemon thread left at exit: %s", th.name)
    return 0
