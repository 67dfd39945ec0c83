"""Link-state events: validity rules (pure)."""

from __future__ import annotations

from collections.abc import Container

from tandem.v1 import link_state_pb2
from tandem.validation import INVALID, UNKNOWN_REFERENCE, check_meta, check_ranges, require


def check_link_state(event: link_state_pb2.LinkStateEvent, known_links: Container[str],
                     now: float | None = None) -> None:
    check_meta(event, now)
    check_ranges(event)
    require(bool(event.link_id), INVALID, "link_id: empty")
    require(event.state != link_state_pb2.OPER_STATE_UNSPECIFIED, INVALID, "state: unspecified")
    require(event.link_id in known_links, UNKNOWN_REFERENCE,
            f"link_id = {event.link_id!r}: no such link in the inventory")
