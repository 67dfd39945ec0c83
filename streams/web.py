"""Health and metrics pages on the worker's web endpoint (Faust's web server).

    GET /tandem/health    JSON: decider position and state, table sizes, consumer lag
    GET /tandem/metrics   Prometheus text format: dead letters, decider, lag per partition
"""

from __future__ import annotations

from typing import Any

from tandem.streams.deadletter import COUNTS


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


def snapshot(tandem: Any) -> dict[str, Any]:
    runner = tandem.decider
    dec = runner.decider if runner is not None else None
    return {
        "app_id": tandem.settings.app_id,
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
    lines = ["# TYPE tandem_dead_letters_total counter"]
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


def install(tandem: Any) -> None:
    app = tandem.app

    @app.page("/tandem/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json(snapshot(tandem))

    @app.page("/tandem/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.text(prometheus(snapshot(tandem)), content_type="text/plain")
