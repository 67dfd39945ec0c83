"""Workaround: libvirt prints every error to stderr, even one Python catches.

libvirt's default error handler (`virDefaultErrorFunc`) writes each error to stderr before
libvirt-python raises `libvirtError` for it. The driver looks VMs up by name to learn whether
they exist, so every "no such domain" it expects would print a line like
`libvirt: QEMU Driver error : Domain not found` into the unit's output, where an operator
would take it for a fault. The exception carries the same text, so the handler is replaced by
one that sends it to the debug log instead.

Upstream: documented behaviour of `virSetErrorFunc`/`registerErrorHandler`, no issue (other
projects do the same, e.g. saltstack/salt#43684). Written for libvirt 9.0 and libvirt-python
12.8. Process-wide (libvirt has one handler per process); applied once, by the driver.
"""

from __future__ import annotations

import logging
from typing import Any

UPSTREAM = "documented libvirt behaviour (virSetErrorFunc); no upstream issue"
WRITTEN_FOR = {"libvirt": "9.0.0", "libvirt-python": "12.8.0"}

log = logging.getLogger("tandem.services.compute.libvirt")
_applied = False


def _to_debug_log(_ctx: Any, err: Any) -> None:
    # err is (code, domain, message, level, str1, str2, str3, int1, int2)
    try:
        log.debug("libvirt: %s (code %s)", err[2], err[0])
    except (TypeError, IndexError):
        log.debug("libvirt: %r", err)


def apply(libvirt: Any) -> None:
    """Route libvirt's own error reports to the debug log (once per process)."""
    global _applied
    if not _applied:
        libvirt.registerErrorHandler(_to_debug_log, None)
        _applied = True
