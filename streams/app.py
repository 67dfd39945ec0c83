"""The Faust application of Tandem.

`create_app(settings)` builds an app with its topics, tables and agents; the module-level
`app` (built from the environment) is what `tandem worker` and `faust -A tandem.streams.app`
run. Agents are a few lines each: decode, call the pure core, update a table, send.
Values travel as raw protobuf bytes and are decoded inside the agents, so that a record that
does not decode is dead-lettered with its origin instead of being dropped by a codec.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust

from tandem.streams import topic_readiness
from tandem.streams import topics as T
from tandem.streams.settings import Settings

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
    decider: Any = None

    def topic(self, base: str) -> faust.TopicT:
        return self.topics[base]


def create_app(settings: Settings) -> Tandem:
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    topic_readiness.apply()  # Faust's own topics are usable once declared (see the module)
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
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 4),
        # At-least-once plus idempotency keyed by input and request ids (see
        # streams/agents/decider.py): Kafka transactions would hold every decision back until
        # the next commit interval, against the request→decision latency target.
        processing_guarantee="at_least_once",
    )
    topics = {
        base: app.topic(spec.name(settings.topic_prefix), key_type=bytes, value_type=bytes,
                        partitions=spec.partitions, config=dict(spec.config))
        for base, spec in T.SPECS.items()
    }
    tandem = Tandem(app=app, settings=settings, topics=topics, tables={})
    from tandem.streams import web
    from tandem.streams.agents import clock, decider, forward, inventory, noc_mirror, telemetry

    inventory.install(tandem)
    telemetry.install(tandem)  # needs the inventory table
    noc_mirror.install(tandem)
    forward.install(tandem)
    decider.install(tandem)
    clock.install(tandem)
    web.install(tandem)
    return tandem


def _from_env() -> faust.App:
    return create_app(Settings.from_env()).app


app = _from_env()
