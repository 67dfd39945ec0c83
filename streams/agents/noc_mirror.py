"""JSON mirrors of the NOC-facing topics: decisions, alarms, link state.

Why: a NOC's tools (kcat, Kafka Connect, a dashboard's consumer) read JSON, not protobuf.
Each record of the source topic is re-published, same key, as the protobuf JSON mapping of
the message (`google.protobuf.json_format.MessageToJson(msg, indent=None)`: field names in
lowerCamelCase, enums as their names, int64 as strings, Timestamps as RFC 3339, default
values omitted) on `tandem.noc.{decisions,alarms,link-state}.json`. A record that does not
decode is dead-lettered with its origin, like any input. The link-state mirror is written by
the decider (`tandem.streams.decider_service`), the link-state topic's one reader.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from tandem.streams import topics as T
from tandem.streams.agents.base import InputHandler
from tandem.streams.txloop import Out, Record

# source base -> mirror base, for the topics read by a mirror handler only
MIRRORS: dict[str, str] = {
    T.DECISIONS_BASE: T.NOC_DECISIONS_JSON_BASE,
    T.ALARMS_BASE: T.NOC_ALARMS_JSON_BASE,
}


def to_json(msg: Message) -> bytes:
    """The JSON form written to a mirror topic (one line, UTF-8)."""
    return json_format.MessageToJson(msg, indent=None).encode()


def install(tandem: Any) -> dict[str, InputHandler[Any]]:
    """One mirror handler per source topic base (the caller runs them)."""
    return {source: _mirror(tandem, source, mirror) for source, mirror in MIRRORS.items()}


def _mirror(tandem: Any, source: str, mirror: str) -> InputHandler[Any]:
    schema = T.SPECS[source].schema
    out = T.SPECS[mirror].name(tandem.settings.topic_prefix)

    async def on_record(rec: Record, msg: Message) -> list[Out]:
        return [Out(out, to_json(msg), key=rec.key)]

    # No semantic check: the mirror shows what was published, valid or not; only
    # undecodable bytes are refused (and dead-lettered).
    return InputHandler(tandem, schema, lambda m: None, on_record,
                        f"noc-mirror:{source.rsplit('.', 1)[-1]}")
