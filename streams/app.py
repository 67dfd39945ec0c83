"""The Faust application of Tandem.

`create_app(settings)` builds an app with its topics, tables and agents; the module-level
`app` (built from the environment) is what `tandem worker` and `faust -A tandem.streams.app`
run. Faust hosts the worker (tables, web pages, timers, lifecycle); the input topics are read,
exactly once, by services of our own started once the tables are recovered: the decider
(`tandem.streams.decider_service`: requests, inventory, link state and operator orders, on the
worker holding the decider), and two loops (`tandem.streams.txloop`): "noc" (the JSON mirrors
of decisions and alarms) and "telemetry". Handlers are a few lines each: decode, call the pure
core, update a table, return outputs. Values travel as raw protobuf bytes and are
decoded inside the handlers, so that a record that does not decode is dead-lettered with its
origin instead of being dropped by a codec.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust

from tandem.streams import compat
from tandem.streams import topics as T
from tandem.streams.settings import Settings
from tandem.streams.txloop import TxLoop

log = logging.getLogger(__name__)


@dataclass
class Tandem:
    """An app and the handles its agents and callers need."""

    app: faust.App
    settings: Settings
    topics: dict[str, faust.TopicT]
    tables: dict[str, Any]
    # Sites whose per-site command topics this process has made sure exist.
    sites_with_topics: set[str] = field(default_factory=set)
    decider: Any = None  # the decider's memory (tandem.streams.agents.decider)
    decider_loop: Any = None  # the service holding the decider (tandem.streams.decider_service)
    executor: Any = None  # the executor's handler (tandem.streams.agents.executor)
    loops: dict[str, TxLoop] = field(default_factory=dict)

    def topic(self, base: str) -> faust.TopicT:
        return self.topics[base]


def create_app(settings: Settings) -> Tandem:
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    compat.apply_all()  # every workaround of aiokafka/Faust/mode behaviour (see the package)
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_replication_factor=1,
        # Faust declares its own changelog/leader topics; ours carry partitions and config
        # from tandem.streams.topics, the same specs `tandem infra topics` applies.
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        web_enabled=settings.web_enabled,
        web_port=settings.web_port,
        web_host="127.0.0.1",
        web_bind="127.0.0.1",  # the live view is unauthenticated: loopback only
        datadir=f"{settings.data_dir}/{settings.app_id}",
        producer_acks=-1,
        # Up to 2 ms for a send to share a produce request with the next ones: one request per
        # message made socket writes and request encoding the decider's largest cost.
        producer_linger=0.002,
        table_cleanup_interval=30.0,
        **compat.faust_standby_seek.APP_SETTINGS,  # no standby replicas: see the module
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 4),
        # Faust's own consumer only follows the tables' changelogs: the inputs are read by
        # our transactional loops (exactly once), see tandem.streams.txloop.
        processing_guarantee="at_least_once",
    )
    topics = {
        base: app.topic(spec.name(settings.topic_prefix), key_type=bytes, value_type=bytes,
                        partitions=spec.partitions, config=dict(spec.config))
        for base, spec in T.SPECS.items()
    }
    tandem = Tandem(app=app, settings=settings, topics=topics, tables={})
    from tandem.streams import web
    from tandem.streams.agents import decider, executor, inventory, noc_mirror, telemetry
    from tandem.streams.agents.base import global_table
    from tandem.streams.decider_service import DeciderLoop

    name = lambda base: T.SPECS[base].name(settings.topic_prefix)  # noqa: E731
    inventory.install(tandem)
    # Written by the decider from the link-state events it accepts.
    tandem.tables["link_state"] = global_table(app, "link_state",
                                               T.SPECS[T.LINK_STATE_BASE].partitions)
    tel = telemetry.install(tandem)  # needs the inventory table
    mirrors = noc_mirror.install(tandem)
    memory = decider.install(tandem)
    ex = executor.install(tandem)
    web.install(tandem)
    tandem.decider_loop = DeciderLoop(tandem, memory)
    app.service(tandem.decider_loop.service())
    loops: tuple[tuple[str, dict[str, Any]], ...] = (
        ("noc", mirrors), ("telemetry", {T.TELEMETRY_BASE: tel}),
        ("executor", {T.DECISIONS_BASE: ex, T.SDN_ACKS_BASE: ex, T.COMPUTE_ACKS_BASE: ex}))
    for loop_name, handlers in loops:
        loop = TxLoop(name=loop_name, broker=settings.broker, app_id=settings.app_id,
                      handlers={name(b): h for b, h in handlers.items()},
                      bases={name(b): b for b in handlers},
                      max_records=5000 if loop_name == "telemetry" else 500,
                      co_partitioned=loop_name == "executor",
                      tick_s=1.0 if loop_name == "executor" else 0.0)
        tandem.loops[loop_name] = loop
        app.service(loop.service())
    return tandem


def _from_env() -> faust.App:
    return create_app(Settings.from_env()).app


app = _from_env()
