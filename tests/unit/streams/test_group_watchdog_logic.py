"""The stalled-group watchdog speaks only when the same error is still held one check later,
and once per error (the decision is a pure step per check; the real stall, with the real
loop and log, is in tests/integration/streams/test_group_watchdog.py)."""

from __future__ import annotations

from types import SimpleNamespace

from tandem.streams import web


def test_transient_error_is_not_reported_a_persistent_one_once() -> None:
    watch = web.GroupWatch()
    checks = [None, None, "RuntimeError('blip')", None, None, None,
              "KeyError('x-changelog')", "KeyError('x-changelog')", "KeyError('x-changelog')",
              None, "KeyError('x-changelog')", "KeyError('x-changelog')"]
    said = [watch.check(e) for e in checks]
    assert [x for x in said if x] == ["KeyError('x-changelog')"]
    assert said.index("KeyError('x-changelog')") == 7  # one check after it was first held


def test_group_state_reads_the_error_held_for_the_consumer() -> None:
    coordinator = SimpleNamespace(_pending_exception=None, generation=1)
    consumer = SimpleNamespace(_coordinator=coordinator, assignment=lambda: set())
    app = SimpleNamespace(consumer=SimpleNamespace(_thread=SimpleNamespace(_consumer=consumer)))
    assert web.group_state(app)["state"] == "waiting"
    coordinator._pending_exception = KeyError("x-changelog")
    assert web.group_state(app) == {"state": "error_pending", "assigned_partitions": 0,
                                    "generation": 1, "error": "KeyError('x-changelog')"}
