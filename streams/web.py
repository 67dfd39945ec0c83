"""Health and metrics pages on the worker's web endpoint (Faust's web server).

    GET /tandem/health    JSON: consumer group state, each processing loop (partitions owned,
                          batches, aborts, failing partitions), decider position and state,
                          table sizes, dead letters, consumer lag
    GET /tandem/metrics   Prometheus text format: the same as gauges and counters

A watchdog logs an error when the worker's consumer group is stalled (below).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tandem.streams.compat import aiokafka_private
from tandem.streams.deadletter import COUNTS

log = logging.getLogger(__name__)

WATCHDOG_S = 10.0


async def lag(tandem: Any) -> dict[str, int]:
    """Records not yet processed, per "topic[partition]" owned by this worker's loops and by
    the decider (when this worker holds it)."""
    out: dict[str, int] = {}
    loops = list(tandem.loops.values()) + ([tandem.decider_loop] if tandem.decider_loop else [])
    for loop in loops:
        try:
            out.update(await loop.lag())
        except Exception as exc:  # the broker is away: say so in the log, not as a 500
            log.debug("lag of %r unavailable: %r", loop, exc)
    return out


def group_state(app: Any) -> dict[str, Any]:
    """The consumer group as Faust's consumer (tables) sees it (see `consumer_group`)."""
    try:
        return consumer_group(aiokafka_private.faust_consumer(app))
    except Exception:
        return {"state": "not started", "assigned_partitions": 0, "error": None}


# State, assigned partitions, generation and held error of one aiokafka consumer: while an
# error is held at start-up Faust's group never forms and the worker waits forever, silently
# (seen when topics were not yet in the broker's metadata; see
# `tandem.streams.compat.kafka_topic_visibility`).
consumer_group = aiokafka_private.consumer_group


def loop_groups(tandem: Any) -> dict[str, dict[str, Any]]:
    """The consumer group state of each processing loop."""
    out: dict[str, dict[str, Any]] = {}
    for name, loop in tandem.loops.items():
        try:
            out[name] = consumer_group(loop.consumer) if loop.consumer is not None else {
                "state": "not started", "assigned_partitions": 0, "error": None}
        except Exception:
            out[name] = {"state": "not started", "assigned_partitions": 0, "error": None}
    return out


def consumer_group(consumer: Any) -> dict[str, Any]:
    """State, assigned partitions, generation and held error of one aiokafka consumer.

    `error` is an error aiokafka holds for the consumer's user. Faust collects such errors only
    while fetching, and it fetches only after its first assignment: while one is held at
    start-up the group never forms and the worker waits forever, silently (seen when topics
    were not yet in the broker's metadata; see `tandem.streams.compat.kafka_topic_visibility`). Reads
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


async def snapshot(tandem: Any) -> dict[str, Any]:
    handler = tandem.decider
    dec = handler.decider if handler is not None else None
    groups = loop_groups(tandem)
    return {
        "app_id": tandem.settings.app_id,
        "group": group_state(tandem.app),
        "loops": {name: {**loop.health(), "group_state": groups[name]}
                  for name, loop in tandem.loops.items()},
        "decider_service": None if tandem.decider_loop is None else tandem.decider_loop.health(),
        "decider": None if dec is None else {
            "next_offset": handler.next_offset,
            "inputs_folded": dec.count,
            "workloads_active": 0 if dec.state is None else len(dec.state.workloads),
            "sites": len(dec.topology.sites),
            "links": len(dec.topology.links),
            "recoveries": handler.recoveries,
        },
        "tables": {name: len(t) for name, t in tandem.tables.items()},
        "dead_letters": {f"{c}/{r}": n for (c, r), n in sorted(COUNTS.items())},
        "lag": await lag(tandem),
    }


def prometheus(snap: dict[str, Any]) -> str:
    group = snap["group"]
    loops = snap["loops"]
    pending = int(group["error"] is not None) + sum(
        int(lp["group_state"]["error"] is not None) for lp in loops.values())
    lines = ["# TYPE tandem_consumer_group_error_pending gauge",
             f"tandem_consumer_group_error_pending {pending}",
             "# TYPE tandem_assigned_partitions gauge",
             f"tandem_assigned_partitions {group['assigned_partitions']}",
             "# TYPE tandem_loop_partitions gauge"]
    for name, lp in loops.items():
        lines.append(f'tandem_loop_partitions{{loop="{name}"}} {len(lp["partitions"])}')
    lines.append("# TYPE tandem_loop_aborts_total counter")
    for name, lp in loops.items():
        lines.append(f'tandem_loop_aborts_total{{loop="{name}"}} {lp["aborts"]}')
    lines.append("# TYPE tandem_dead_letters_total counter")
    for key, n in snap["dead_letters"].items():
        consumer, reason = key.split("/", 1)
        lines.append(f'tandem_dead_letters_total{{consumer="{consumer}",reason="{reason}"}} {n}')
    lines.append("# TYPE tandem_consumer_lag gauge")
    for tp, n in snap["lag"].items():
        topic, part = tp[:-1].split("[")
        lines.append(f'tandem_consumer_lag{{topic="{topic}",partition="{part}"}} {n}')
    d = snap["decider"]
    if d is not None:
        for key in ("inputs_folded", "workloads_active", "recoveries", "sites", "links"):
            lines.append(f"# TYPE tandem_decider_{key} gauge")
            lines.append(f"tandem_decider_{key} {d[key]}")
    for name, n in snap["tables"].items():
        lines.append(f'tandem_table_keys{{table="{name}"}} {n}')
    return "\n".join(lines) + "\n"


class GroupWatch:
    """When to say a group is stalled: the same error still held one check after it was first
    seen (a transient one is collected by Faust's next fetch), once per distinct error."""

    def __init__(self) -> None:
        self.reported: set[str] = set()
        self.previous: str | None = None

    def check(self, error: str | None) -> str | None:
        """The error to report now, if any, given the error held at this check."""
        report = None
        if error is not None and error == self.previous and error not in self.reported:
            self.reported.add(error)
            report = error
        self.previous = error
        return report


async def watch_group(tandem: Any) -> None:
    """Say it in the log when the worker's consumer group is stalled (see `GroupWatch`)."""
    watch = GroupWatch()
    while True:
        await asyncio.sleep(WATCHDOG_S)
        error = watch.check(group_state(tandem.app)["error"])
        if error is not None:
            log.error("consumer group %s is stalled: aiokafka holds %s for the consumer, and "
                      "Faust does not collect it before its first assignment; this worker "
                      "processes nothing until it is restarted", tandem.settings.app_id, error)


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
        return web.json(await snapshot(tandem))

    @app.page("/tandem/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.text(prometheus(await snapshot(tandem)), content_type="text/plain")
