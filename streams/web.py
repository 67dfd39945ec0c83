"""Health and metrics pages on the worker's web endpoint (Faust's web server).

    GET /tandem/health    JSON: consumer group state, decider position and state, table sizes,
                          consumer lag
    GET /tandem/metrics   Prometheus text format: the same as gauges and counters

A watchdog logs an error when the worker's consumer group is stalled (below).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tandem.streams.deadletter import COUNTS

log = logging.getLogger(__name__)

WATCHDOG_S = 10.0


def lag(app: Any) -> dict[str, int]:
    """Records not yet read, per "topic[partition]" assigned to this worker."""
    out: dict[str, int] = {}
    consumer = app.consumer
    read = getattr(app.monitor, "tp_read_offsets", None) or {}
    for tp in sorted(consumer.assignment(), key=lambda t: (t.topic, t.partition)):
        try:
            high = consumer.highwater(tp)
        except Exception:  # not fetched yet
            continue
        if high is None:
            continue
        pos = read.get(tp, -1) + 1
        out[f"{tp.topic}[{tp.partition}]"] = max(0, int(high) - pos)
    return out


def group_state(app: Any) -> dict[str, Any]:
    """The consumer group as this worker's Kafka consumer sees it (see `consumer_group`)."""
    try:
        return consumer_group(app.consumer._thread._consumer)  # noqa: SLF001
    except Exception:
        return {"state": "not started", "assigned_partitions": 0, "error": None}


def consumer_group(consumer: Any) -> dict[str, Any]:
    """State, assigned partitions, generation and held error of one aiokafka consumer.

    `error` is an error aiokafka holds for the consumer's user. Faust collects such errors only
    while fetching, and it fetches only after its first assignment: while one is held at
    start-up the group never forms and the worker waits forever, silently (seen when topics
    were not yet in the broker's metadata; see `tandem.streams.topic_readiness`). Reads
    aiokafka's private state."""
    coordinator = consumer._coordinator  # noqa: SLF001
    assigned = len(consumer.assignment())
    error = getattr(coordinator, "_pending_exception", None)
    return {
        "state": "error_pending" if error is not None else ("assigned" if assigned else "waiting"),
        "assigned_partitions": assigned,
        "generation": getattr(coordinator, "generation", None),
        "error": None if error is None else repr(error),
    }


def snapshot(tandem: Any) -> dict[str, Any]:
    runner = tandem.decider
    dec = runner.decider if runner is not None else None
    return {
        "app_id": tandem.settings.app_id,
        "group": group_state(tandem.app),
        "decider": None if dec is None else {
            "next_offset": runner.next_offset,
            "inputs_folded": dec.count,
            "workloads_active": 0 if dec.state is None else len(dec.state.workloads),
            "sites": len(dec.topology.sites),
            "links": len(dec.topology.links),
            "decisions_published": len(runner.published),
        },
        "tables": {name: len(t) for name, t in tandem.tables.items()},
        "dead_letters": {f"{c}/{r}": n for (c, r), n in sorted(COUNTS.items())},
        "lag": lag(tandem.app),
    }


def prometheus(snap: dict[str, Any]) -> str:
    group = snap["group"]
    lines = ["# TYPE tandem_consumer_group_error_pending gauge",
             f"tandem_consumer_group_error_pending {int(group['error'] is not None)}",
             "# TYPE tandem_assigned_partitions gauge",
             f"tandem_assigned_partitions {group['assigned_partitions']}",
             "# TYPE tandem_dead_letters_total counter"]
    for key, n in snap["dead_letters"].items():
        consumer, reason = key.split("/", 1)
        lines.append(f'tandem_dead_letters_total{{consumer="{consumer}",reason="{reason}"}} {n}')
    lines.append("# TYPE tandem_consumer_lag gauge")
    for tp, n in snap["lag"].items():
        topic, part = tp[:-1].split("[")
        lines.append(f'tandem_consumer_lag{{topic="{topic}",partition="{part}"}} {n}')
    d = snap["decider"]
    if d is not None:
        for key in ("inputs_folded", "workloads_active", "decisions_published", "sites", "links"):
            lines.append(f"# TYPE tandem_decider_{key} gauge")
            lines.append(f"tandem_decider_{key} {d[key]}")
    for name, n in snap["tables"].items():
        lines.append(f'tandem_table_keys{{table="{name}"}} {n}')
    return "\n".join(lines) + "\n"


async def watch_group(tandem: Any) -> None:
    """Say it in the log when the worker's consumer group is stalled: the same error still held
    for the consumer one check later (a transient one is collected by Faust's next fetch).
    Once per distinct error."""
    reported: set[str] = set()
    previous: str | None = None
    while True:
        await asyncio.sleep(WATCHDOG_S)
        error = group_state(tandem.app)["error"]
        if error is not None and error == previous and error not in reported:
            reported.add(error)
            log.error("consumer group %s is stalled: aiokafka holds %s for the consumer, and "
                      "Faust does not collect it before its first assignment; this worker "
                      "processes nothing until it is restarted", tandem.settings.app_id, error)
        previous = error


def install(tandem: Any) -> None:
    app = tandem.app
    # Started with the app's first start, not as a Faust timer: timers start only once the
    # tables are recovered, which a stalled group never reaches.
    first_start = app.on_first_start

    async def on_first_start() -> None:
        await first_start()
        app.add_future(watch_group(tandem))

    app.on_first_start = on_first_start

    @app.page("/tandem/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json(snapshot(tandem))

    @app.page("/tandem/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.text(prometheus(snapshot(tandem)), content_type="text/plain")
