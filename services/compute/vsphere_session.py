"""One vCenter session for the vSphere driver: connecting, staying connected, waiting on tasks.

What pyvmomi users trip over, and what this module does about it:

- **Sockets without timeouts.** `SmartConnect` leaves SOAP sockets blocking forever unless
  `httpConnectionTimeout` is given, and its API-version discovery ignores even that (pyvmomi
  #627, `compat_pyvmomi_627`). Both are bounded by `timeout_s` here.
- **Silently unverified TLS.** `pyVim.connect.getSslContext` turns verification off for
  `localhost`/`127.0.0.1` when no context is passed. We always pass one: verifying (system CAs
  or `ca_file`), unverified only when `insecure` is asked for.
- **Polling tasks.** `task.info.state` in a loop costs a round trip per poll and lags. Tasks
  are awaited through a private property collector's `WaitForUpdatesEx` with `maxWaitSeconds`
  below the socket timeout (a long poll that cannot trip the socket timeout), and the
  collector is destroyed afterwards (a shared one would mix other threads' updates in).
- **Expired sessions.** vCenter drops idle sessions (30 min by default) and forgets all of
  them on restart; every later call raises `NotAuthenticated`. `run` logs in again and runs
  the operation once more: driver operations are idempotent, so a re-run is safe.
- **A vCenter that goes away.** Connection errors drop the session; the operation raises a
  `DriverError` saying vCenter is unreachable; the next operation reconnects (re-reading the
  CA file, which a restarted server may have replaced). Down and back are logged once each.
- **A task that fails midway.** Its fault becomes a `DriverError` naming the VM, the step and
  the vSphere fault with its message.
"""

from __future__ import annotations

import http.client
import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pyVim import connect as _connect
from pyVmomi import vim as _vim
from pyVmomi import vmodl as _vmodl

from tandem.services.compute import compat_pyvmomi_627
from tandem.services.compute.driver import DriverError, HypervisorUnreachable

# pyvmomi's dynamic types are untyped for mypy: treat them as Any, once.
vim: Any = _vim
connect: Any = _connect
vmodl: Any = _vmodl
log = logging.getLogger(__name__)
T = TypeVar("T")
PC = vmodl.query.PropertyCollector
# Raised by the transport when vCenter is not there (refused, reset, timed out, TLS torn down).
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)


@dataclass(frozen=True)
class Endpoint:
    url: str  # https://host[:port]/sdk
    user: str
    password: str
    ca_file: str = ""  # PEM to trust (a self-signed vCenter or the simulator); "" = system CAs
    insecure: bool = False  # no certificate verification at all: only when asked for
    timeout_s: float = 30.0  # every socket operation
    task_timeout_s: float = 300.0  # a whole task

    def public(self) -> str:
        p = urlsplit(self.url)
        return f"{p.scheme}://{p.hostname}:{p.port or 443}{p.path or '/sdk'}"


class TaskFailed(DriverError):
    """A vSphere task ended in error; `fault` is the vSphere fault (e.g. vim.fault.DuplicateName)."""

    def __init__(self, message: str, fault: Any) -> None:
        super().__init__(message)
        self.fault = fault


def fault_text(exc: BaseException) -> str:
    """`vim.fault.InvalidState: <message>` for a vSphere fault, the repr otherwise."""
    if isinstance(exc, vmodl.MethodFault):
        msg = getattr(exc, "msg", "") or ""
        return f"{type(exc).__name__}: {msg}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


class Session:
    """A logged-in vCenter connection, re-established on demand (thread-safe)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._lock = threading.RLock()
        self._si: Any = None
        self._content: Any = None
        self._down_since: float | None = None
        self.logins = 0  # how many times we logged in (tests read it)
        self.cache: dict[str, Any] = {}  # managed objects resolved in this session
        compat_pyvmomi_627.apply(endpoint.timeout_s)
        if endpoint.timeout_s < 3:
            # A task's long poll lasts at least 1 s (maxWaitSeconds is whole seconds) and must
            # end before the socket times out.
            log.warning("vSphere socket timeout %.1f s is below 3 s: task waits may time out",
                        endpoint.timeout_s)

    # ----------------------------------------------------------------------- connection
    def _ssl_context(self) -> ssl.SSLContext:
        if self.endpoint.insecure:
            return ssl._create_unverified_context()
        # Created anew on every connect: a restarted server may have a new certificate.
        return ssl.create_default_context(cafile=self.endpoint.ca_file or None)

    def content(self) -> Any:
        """The ServiceContent of a logged-in session, connecting first if needed."""
        with self._lock:
            if self._content is not None:
                return self._content
            ep, p = self.endpoint, urlsplit(self.endpoint.url)
            try:
                si = connect.SmartConnect(
                    protocol=p.scheme or "https", host=p.hostname or "localhost",
                    port=p.port or 443, path=p.path or "/sdk", user=ep.user, pwd=ep.password,
                    sslContext=self._ssl_context(), disableSslCertValidation=ep.insecure,
                    httpConnectionTimeout=ep.timeout_s)
                content = si.RetrieveContent()
            except vim.fault.InvalidLogin as exc:
                raise DriverError(f"vCenter {ep.public()} refused the login of {ep.user!r}: "
                                  f"{fault_text(exc)}") from None
            except ssl.SSLCertVerificationError as exc:
                raise DriverError(f"vCenter {ep.public()}: TLS certificate not trusted ({exc}); "
                                  "give its CA file (ca_file) or, for a lab, insecure") from None
            except Exception as exc:  # refused, reset, timed out, "not a VIM server", ...
                self._mark_down(exc)
                raise HypervisorUnreachable(f"vCenter {ep.public()} is unreachable "
                                  f"({fault_text(exc)}); the next operation reconnects") from None
            self._si, self._content = si, content
            self.cache.clear()
            self.logins += 1
            if self._down_since is not None:
                log.warning("vCenter %s is back after %.1f s", ep.public(),
                            time.monotonic() - self._down_since)
                self._down_since = None
            return content

    def _mark_down(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("vCenter %s unreachable: %s", self.endpoint.public(), fault_text(exc))

    def drop(self) -> None:
        """Forget the session (no logout: the server may be gone); the next call reconnects."""
        with self._lock:
            self._si = self._content = None
            self.cache.clear()

    def session_key(self) -> str:
        return str(self.content().sessionManager.currentSession.key)

    def close(self) -> None:
        with self._lock:
            si, self._si, self._content = self._si, None, None
            self.cache.clear()
        if si is not None:
            try:
                si.content.sessionManager.Logout()
            except Exception:  # already gone: nothing to release
                pass

    # ----------------------------------------------------------------------- operations
    def run(self, what: str, op: Callable[[Any], T]) -> T:
        """Run op(content); on an expired session log in again and run it once more, on a
        transport error reconnect and run it once more, then give up with a DriverError."""
        for attempt in (1, 2):
            content = self.content()
            try:
                return op(content)
            except vim.fault.NotAuthenticated:
                log.info("vCenter session expired while %s: logging in again", what)
                self.drop()
                if attempt == 2:
                    raise DriverError(f"{what}: vCenter {self.endpoint.public()} keeps "
                                      "refusing our session (NotAuthenticated)") from None
            except vmodl.fault.ManagedObjectNotFound as exc:
                self.drop()  # a cached object is gone (vCenter restarted, inventory changed)
                if attempt == 2:
                    raise DriverError(f"{what}: {fault_text(exc)}") from None
            except DriverError:
                raise
            except vmodl.MethodFault as exc:
                raise DriverError(f"{what}: {fault_text(exc)}") from None
            except TRANSPORT_ERRORS as exc:
                self.drop()
                if attempt == 2:
                    self._mark_down(exc)
                    raise HypervisorUnreachable(f"{what}: vCenter {self.endpoint.public()} is unreachable "
                                      f"({fault_text(exc)}); the next operation reconnects") from None
        raise AssertionError("unreachable")

    def wait_task(self, content: Any, task: Any, what: str) -> Any:
        """Wait for a task through a private property collector; its result, or a DriverError
        `<what> failed: <fault>` (what names the VM and the step)."""
        pc = content.propertyCollector.CreatePropertyCollector()
        try:
            pc.CreateFilter(PC.FilterSpec(
                objectSet=[PC.ObjectSpec(obj=task, skip=False)],
                propSet=[PC.PropertySpec(type=vim.Task, all=False,
                                         pathSet=["info.state", "info.error", "info.result"])]),
                partialUpdates=False)
            # The long poll must end before the socket times out.
            chunk = max(1, int(self.endpoint.timeout_s * 0.6))
            deadline = time.monotonic() + self.endpoint.task_timeout_s
            version, info = "", dict[str, Any]()
            while info.get("info.state") not in ("success", "error"):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DriverError(f"{what}: vSphere task {task._moId} did not finish in "
                                      f"{self.endpoint.task_timeout_s:.0f} s (it may still run)")
                upd = pc.WaitForUpdatesEx(version, PC.WaitOptions(
                    maxWaitSeconds=max(1, min(chunk, int(left) + 1))))
                if upd is None:
                    continue  # nothing changed within maxWaitSeconds
                version = upd.version
                for fs in upd.filterSet or []:
                    for obj in fs.objectSet or []:
                        for change in obj.changeSet or []:
                            info[change.name] = change.val
            if info["info.state"] == "error":
                # pyvmomi hands a LocalizedMethodFault over as the MethodFault itself (its
                # `msg` the localized message); older servers/paths give the wrapper.
                err = info.get("info.error")
                fault = err if isinstance(err, vmodl.MethodFault) else getattr(err, "fault", None)
                text = fault_text(fault) if fault is not None else "unknown fault"
                msg = getattr(err, "localizedMessage", "") or ""
                if msg and msg not in text:
                    text += f" ({msg})"
                raise TaskFailed(f"{what} failed: {text}", fault)
            return info.get("info.result")
        finally:
            try:
                pc.DestroyPropertyCollector()
            except Exception:  # the session may be gone; the server drops it with the session
                pass

    # ----------------------------------------------------------------------- reading
    @staticmethod
    def retrieve(content: Any, root: Any, obj_type: Any,
                 props: Sequence[str]) -> list[tuple[Any, dict[str, Any]]]:
        """Properties of every object of a type under root (a container view, paged)."""
        view = content.viewManager.CreateContainerView(root, [obj_type], True)
        try:
            spec = PC.FilterSpec(
                objectSet=[PC.ObjectSpec(obj=view, skip=True, selectSet=[PC.TraversalSpec(
                    name="view", path="view", skip=False, type=vim.view.ContainerView)])],
                propSet=[PC.PropertySpec(type=obj_type, pathSet=list(props), all=False)])
            return Session._collect(content.propertyCollector, spec)
        finally:
            view.Destroy()

    @staticmethod
    def properties(content: Any, objs: Sequence[Any], obj_type: Any,
                   props: Sequence[str]) -> list[tuple[Any, dict[str, Any]]]:
        """Properties of the given objects, in one round trip. An object gone meanwhile (a VM
        deleted between reading a host's `vm` list and reading the VMs — and, on govmomi's
        simulator, a VM relocated away and then deleted, which its first host keeps listing)
        faults the whole call with `ManagedObjectNotFound` naming it: it is left out and the
        others read again, so one vanished VM never fails a capacity reading or a create."""
        left = list(objs)
        while left:
            spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=o, skip=False) for o in left],
                                 propSet=[PC.PropertySpec(type=obj_type, pathSet=list(props),
                                                          all=False)])
            try:
                return Session._collect(content.propertyCollector, spec)
            except vmodl.fault.ManagedObjectNotFound as exc:
                gone = getattr(getattr(exc, "obj", None), "_moId", None)
                kept = [o for o in left if o._moId != gone]
                if gone is None or len(kept) == len(left):
                    raise  # not one of ours: the caller's retry decides
                log.info("vCenter: %s is gone; reading the other %d objects", gone, len(kept))
                left = kept
        return []

    @staticmethod
    def _collect(pc: Any, spec: Any) -> list[tuple[Any, dict[str, Any]]]:
        out: list[tuple[Any, dict[str, Any]]] = []
        res = pc.RetrievePropertiesEx([spec], PC.RetrieveOptions())
        while res is not None:
            for oc in res.objects or []:
                out.append((oc.obj, {p.name: p.val for p in oc.propSet or []}))
            if not res.token:
                break
            res = pc.ContinueRetrievePropertiesEx(res.token)
        return out
