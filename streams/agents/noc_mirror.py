"""JSON mirrors of the NOC-facing topics: decisions, alarms, link state.

Why: a NOC's tools (kcat, Kafka Connect, a dashboard's consumer) read JSON, not protobuf.
Each record of the source topic is re-published, same key, as the protobuf JSON mapping of
the message (`google.protobuf.json_format.MessageToJson(msg, indent=None)`: field names in
lowerCamelCase, enums as their names, int64 as strings, Timestamps as RFC 3339, default
values omitted) on `tandem.noc.{decisions,alarms,link-state}.json`. A record that does not
decode is dead-lettered with its origin, like any input.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from tandem.streams import topics as T
from tandem.streams.agents.base import run_input_agent

# source base -> mirror base
MIRRORS: dict[str, str] = {
    T.DECISIONS_BASE: T.NOC_DECISIONS_JSON_BASE,
    T.ALARMS_BASE: T.NOC_ALARMS_JSON_BASE,
    T.LINK_STATE_BASE: T.NOC_LINK_STATE_JSON_BASE,
}


def to_json(msg: Message) -> bytes:
    """The JSON form written to a mirror topic (one line, UTF-8)."""
    return json_format.MessageToJson(msg, indent=None).encode()


def install(tandem: Any) -> None:
    """Adds one mirror agent per NOC-facing topic (idempotent)."""
    if getattr(tandem, "_noc_mirror", False):
        return
    tandem._noc_mirror = True
    app = tandem.app
    for source, mirror in MIRRORS.items():
        _mirror(tandem, app, source, mirror)


def _mirror(tandem: Any, app: Any, source: str, mirror: str) -> None:
    schema = T.SPECS[source].schema
    out = tandem.topic(mirror)
    consumer = f"noc-mirror:{source.rsplit('.', 1)[-1]}"

    async def handle(event: Any, msg: Message) -> None:
        key = event.message.key
        await out.send(key=key if isinstance(key, bytes) else None, value=to_json(msg))

    @app.agent(tandem.topic(source), name=f"tandem.noc-mirror.{source}")
    async def mirror_agent(stream: Any) -> None:
        # No semantic check: the mirror shows what was published, valid or not; only
        # undecodable bytes are refused (and dead-lettered).
        await run_input_agent(tandem, stream, schema, lambda m: None, handle, consumer)
