"""Pure: the token file, authenticating a call's metadata, and the tenant and NOC rules."""

from __future__ import annotations

import hashlib

import pytest
from google.rpc import code_pb2, error_details_pb2

from tandem.services.api.auth import ANYONE, NOC, Principal, TokenError, Tokens, may_change, may_read
from tandem.services.api.errors import PermissionDenied, Unauthenticated
from tandem.services.api.interceptor import status_of


def test_the_token_file_maps_tokens_or_their_digests_to_tenants_and_roles() -> None:
    digest = hashlib.sha256(b"globex-secret").hexdigest()
    t = Tokens.parse(f"# comment\nacme-secret tenant=acme\n\nsha256:{digest}  tenant=globex  # x\n"
                     "noc-secret role=noc\n")
    assert len(t) == 3
    assert t.authenticate([("authorization", "Bearer acme-secret")]) == Principal(tenant="acme")
    assert t.authenticate([("authorization", "bearer globex-secret")]).tenant == "globex"
    assert t.authenticate([("x", "y"), ("authorization", b"Bearer noc-secret")]).role == NOC
    for md in ([], [("authorization", "Bearer nope")], [("authorization", "Basic acme-secret")],
               [("authorization", "Bearer ")], None):
        with pytest.raises(Unauthenticated):
            t.authenticate(md)


@pytest.mark.parametrize("text, says", [
    ("tok", "tokens:1: expected"), ("tok tenant=", "tokens:1:"), ("tok role=admin", "role=operator"),
    ("sha256:abc tenant=a", "64 hex"), ("a tenant=x\na tenant=y", "tokens:2: the same token"),
    ("# nothing\n", "no tokens")])
def test_a_bad_token_file_names_the_line(text: str, says: str) -> None:
    with pytest.raises(TokenError) as err:
        Tokens.parse(text)
    assert says in str(err.value)


def test_a_tenant_acts_for_itself_only_and_the_noc_reads_only() -> None:
    acme, noc = Principal(tenant="acme"), Principal(role=NOC)
    assert may_change(acme, "", "workload.tenant") == "acme"
    assert may_change(acme, "acme", "workload.tenant") == "acme"
    with pytest.raises(PermissionDenied) as err:
        may_change(acme, "globex", "workload.tenant")
    assert err.value.reason == "OTHER_TENANT" and err.value.field == "workload.tenant"
    with pytest.raises(PermissionDenied) as err:
        may_change(noc, "acme", "release.tenant")
    assert err.value.reason == "READ_ONLY_ROLE"
    assert may_read(acme, "") == "acme" and may_read(noc, "") == "" and may_read(noc, "x") == "x"
    with pytest.raises(PermissionDenied):
        may_read(acme, "globex")
    assert may_change(ANYONE, "globex", "f") == "globex" and ANYONE.unrestricted


def test_denials_and_missing_tokens_have_their_codes() -> None:
    st = status_of(PermissionDenied("no", reason="READ_ONLY_ROLE", field="release.tenant"))
    assert st.code == code_pb2.PERMISSION_DENIED
    info = error_details_pb2.ErrorInfo()
    assert st.details[0].Unpack(info) and info.reason == "READ_ONLY_ROLE"
    assert info.metadata["field"] == "release.tenant"
    assert status_of(Unauthenticated("no token")).code == code_pb2.UNAUTHENTICATED


def test_maintenance_is_the_operators_and_the_operator_orders_nothing() -> None:
    from tandem.services.api.auth import OPERATOR, may_maintain

    t = Tokens.parse("ops role=operator\n")
    ops = t.authenticate([("authorization", "Bearer ops")])
    assert ops.role == OPERATOR
    may_maintain(ops)
    may_maintain(ANYONE)  # no token file: as before tokens
    for who in (Principal(tenant="acme"), Principal(role=NOC)):
        with pytest.raises(PermissionDenied) as err:
            may_maintain(who)
        assert err.value.reason == "NOT_OPERATOR"
    with pytest.raises(PermissionDenied) as err:
        may_change(ops, "acme", "workload.tenant")
    assert err.value.reason == "NOT_A_TENANT"
    assert may_read(ops, "acme") == "acme"
