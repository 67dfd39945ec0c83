"""Who is calling, and what it may see and change: bearer tokens → tenants or the NOC role.

Why tokens in a file the server reads, not an identity provider: OSS/BSS systems are a few
known clients per tenant; a file (`--tokens FILE`) mapping each token to a tenant or to the
NOC role is enough to isolate tenants, and an OAuth2 front can replace it later without
touching the servicers (they only see a `Principal`). The file may hold a token's SHA-256
(`sha256:<hex>`) instead of the token itself, so it need not hold the secret.

Token file, one token a line (blank lines and `#` comments ignored):

    s3cr3t-acme        tenant=acme
    sha256:9f86d08...  tenant=globex
    noc-token          role=noc
    ops-token          role=operator
    cab-token          role=approver  name=change-board

The rules (pure functions here, called by the servicers; the interceptor authenticates):
- a tenant sees, watches and changes only its own workloads. A call naming another tenant
  (`workload.tenant`, `release.tenant`, `tenant`) is PERMISSION_DENIED: the caller asked for
  what its token does not allow. A workload id of another tenant is NOT_FOUND (GetWorkload and
  Release alike), the answer a workload that does not exist gets, so a tenant cannot learn
  which ids other tenants use. A tenant that leaves the tenant field empty gets its own.
- the NOC role sees everything and changes nothing: PlaceAndConnect and Release are
  PERMISSION_DENIED; reads, WatchEvents and WhatIf (nothing committed) are allowed.
- the operator role sees everything and does maintenance (SetLinkAdminState, DrainSite),
  which nobody else may do once tokens are in use; it orders nothing for a tenant.
- the approver role (a workflow system) sees everything and approves or rejects orders held
  for an approval (Approve, Reject); the operator role may too. A tenant may not approve its
  own orders. `name=` (optional) says who approves in the approval events.
- without a token file every caller may act for every tenant (as before tokens existed); the
  server says so in its log.
"""

from __future__ import annotations

import contextvars
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tandem.services.api.errors import PermissionDenied, Unauthenticated

NOC = "noc"
OPERATOR = "operator"
APPROVER = "approver"


@dataclass(frozen=True)
class Principal:
    """A caller: a tenant, the NOC role, or anyone (no token file)."""

    tenant: str = ""  # set for a tenant's token
    role: str = ""  # "noc", "operator", "approver", or "" for a tenant and for anyone
    name: str = ""  # who it is (the token file's name=), for the approval events

    @property
    def unrestricted(self) -> bool:
        return not self.tenant and not self.role

    def describe(self) -> str:
        who = f"tenant {self.tenant!r}" if self.tenant else (
            f"role {self.role!r}" if self.role else "anyone")
        return f"{self.name} ({who})" if self.name else who


ANYONE = Principal()
CURRENT: contextvars.ContextVar[Principal] = contextvars.ContextVar("tandem_api_principal",
                                                                   default=ANYONE)


class TokenError(ValueError):
    """A token file the server cannot use (names the line)."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    """The token table: SHA-256 of each token → its principal."""

    def __init__(self, entries: dict[str, Principal]) -> None:
        self._by_digest = entries

    def __len__(self) -> int:
        return len(self._by_digest)

    @classmethod
    def parse(cls, text: str, source: str = "tokens") -> Tokens:
        entries: dict[str, Principal] = {}
        for n, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            name = ""
            if len(parts) == 3 and parts[2].startswith("name=") and len(parts[2]) > 5:
                name = parts.pop()[5:]
            if len(parts) != 2 or "=" not in parts[1]:
                raise TokenError(f"{source}:{n}: expected 'TOKEN tenant=NAME' or 'TOKEN "
                                 "role=ROLE', then optionally name=WHO")
            token, (key, _, value) = parts[0], parts[1].partition("=")
            if key == "tenant" and value:
                who = Principal(tenant=value, name=name)
            elif key == "role" and value in (NOC, OPERATOR, APPROVER):
                who = Principal(role=value, name=name)
            else:
                raise TokenError(f"{source}:{n}: {parts[1]!r}: tenant=NAME, role=noc, "
                                 "role=operator or role=approver")
            digest = token[7:].lower() if token.startswith("sha256:") else _digest(token)
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise TokenError(f"{source}:{n}: sha256: needs 64 hex digits")
            if digest in entries:
                raise TokenError(f"{source}:{n}: the same token twice")
            entries[digest] = who
        if not entries:
            raise TokenError(f"{source}: no tokens")
        return cls(entries)

    @classmethod
    def load(cls, path: str | Path) -> Tokens:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise TokenError(f"cannot read the token file {path}: {exc.strerror}") from None
        return cls.parse(text, str(path))

    def authenticate(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> Principal:
        """The principal of a call's `authorization: Bearer TOKEN` metadata; Unauthenticated
        when it is missing or unknown."""
        header = next((v for k, v in (metadata or ()) if k == "authorization"), None)
        if header is None:
            raise Unauthenticated("no bearer token: send 'authorization: Bearer TOKEN'")
        value = header.decode() if isinstance(header, bytes) else header
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the authorization metadata is not 'Bearer TOKEN'")
        who = self._by_digest.get(_digest(token.strip()))
        if who is None:
            raise Unauthenticated("unknown bearer token")
        return who


# ------------------------------------------------------------------------------- the rules
def may_change(who: Principal, tenant: str, field: str) -> str:
    """The tenant an order (place or release) acts for: `tenant` as given, or the caller's own
    when empty. PermissionDenied for the NOC and operator roles (they order nothing for a
    tenant), or a tenant naming another."""
    if who.role == NOC:
        raise PermissionDenied("the NOC role is read-only", reason="READ_ONLY_ROLE", field=field)
    if who.role in (OPERATOR, APPROVER):
        raise PermissionDenied(f"the {who.role} role orders nothing; orders are a "
                               "tenant's", reason="NOT_A_TENANT", field=field)
    if who.tenant:
        if tenant and tenant != who.tenant:
            raise PermissionDenied(f"{field} = {tenant!r}: this token acts for tenant "
                                   f"{who.tenant!r} only", reason="OTHER_TENANT", field=field)
        return who.tenant
    return tenant


def may_maintain(who: Principal) -> None:
    """Maintenance (SetLinkAdminState, DrainSite): the operator role, or anyone without a token
    file."""
    if not who.unrestricted and who.role != OPERATOR:
        raise PermissionDenied(f"maintenance is the operator role's ({who.describe()} may not)",
                               reason="NOT_OPERATOR")


def may_read(who: Principal, tenant: str, field: str = "tenant") -> str:
    """The tenant filter a read or watch runs with: a tenant's own (it may name itself, or
    leave it empty), anything for the NOC and for anyone."""
    if who.tenant:
        if tenant and tenant != who.tenant:
            raise PermissionDenied(f"{field} = {tenant!r}: this token reads tenant "
                                   f"{who.tenant!r} only", reason="OTHER_TENANT", field=field)
        return who.tenant
    return tenant


def may_approve(who: Principal) -> str:
    """Approve / Reject: the approver or operator role, or anyone without a token file; who
    it is (for the approval events). A tenant approving its own order would defeat the point."""
    if not who.unrestricted and who.role not in (APPROVER, OPERATOR):
        raise PermissionDenied(f"approvals are the approver role's ({who.describe()} may not)",
                               reason="NOT_APPROVER")
    return who.describe()
