"""Workaround for pyvmomi issue #627 ("Timeout the (smart)connect"): API-version discovery
ignores every timeout.

Affected: pyvmomi 6.x through 9.1.1.0 (checked in 9.1.1.0, the pinned version).
`SmartConnect` first fetches `/sdk/vimServiceVersions.xml` through
`pyVim.connect.__GetElementTree`, which opens `http.client.HTTPSConnection(host, port,
context=...)` with no `timeout`: `httpConnectionTimeout` (added in 8.0.0.1) reaches the SOAP
stub but not this request. A vCenter that accepts TCP but does not answer (hung, or a
half-open connection after a failover) blocks `SmartConnect` forever, and with it the unit's
driver thread.

The fix here: give the two connection classes `pyVim.connect` looks up for that request
(module globals `HTTPSConnection`, `HTTPConnection`) a default timeout. Only the discovery
request uses these names (the SOAP stub builds its own connections with the configured
timeout), so nothing else changes. `apply(timeout)` is idempotent; the last timeout asked
wins (one process drives one vCenter, so one value). Remove this module once pyvmomi passes
`httpConnectionTimeout` to the discovery request.
"""

from __future__ import annotations

import http.client
from typing import Any

from pyVim import connect as _connect

_timeout_s: float = 30.0


class _TimedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("timeout", _timeout_s)
        super().__init__(*args, **kwargs)


class _TimedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("timeout", _timeout_s)
        super().__init__(*args, **kwargs)


def apply(timeout_s: float) -> None:
    """Make pyVim's version discovery time out after `timeout_s` seconds."""
    global _timeout_s
    _timeout_s = float(timeout_s)
    _connect.HTTPSConnection = _TimedHTTPSConnection  # type: ignore[attr-defined]
    _connect.HTTPConnection = _TimedHTTPConnection  # type: ignore[attr-defined]


def applied() -> bool:
    return getattr(_connect, "HTTPSConnection", None) is _TimedHTTPSConnection
