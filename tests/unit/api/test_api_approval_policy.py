"""The API's side of approvals, pure parts: the tenant policy, the approver role, how an
approval event is shown and filtered."""

from __future__ import annotations

import pytest

from tandem.services.api import events, present
from tandem.services.api.approvals import Policy, PolicyError
from tandem.services.api.auth import ANYONE, Principal, Tokens, may_approve, may_change
from tandem.services.api.errors import PermissionDenied
from tandem.v1 import api_pb2, approval_pb2 as A, decision_pb2 as D, workload_pb2 as W


def test_the_policy_holds_the_named_tenants_orders() -> None:
    p = Policy.parse(["acme", "globex:60"])
    assert p.tenants == {"acme": 0, "globex": 60}
    w = W.WorkloadRequest(tenant="globex")
    p.apply(w)
    assert w.approval.required and w.approval.hold_seconds == 60
    own = W.WorkloadRequest(tenant="acme", approval=W.ApprovalRequirement(required=True,
                                                                          hold_seconds=5))
    p.apply(own)
    assert own.approval.hold_seconds == 5  # an order's own time limit is kept
    other = W.WorkloadRequest(tenant="initech")
    p.apply(other)
    assert not other.HasField("approval")
    assert "acme (held 900 s)" in p.describe()


@pytest.mark.parametrize("bad", [":60", "acme:soon", "acme:-1", "acme:99999999"])
def test_a_bad_policy_value_is_refused_naming_it(bad: str) -> None:
    with pytest.raises(PolicyError, match="--require-approval"):
        Policy.parse([bad])


def test_approvers_and_operators_judge_tenants_and_the_noc_do_not() -> None:
    t = Tokens.parse("cab role=approver name=change-board\nops role=operator\n")
    assert len(t) == 2
    cab = t.authenticate([("authorization", "Bearer cab")])
    assert may_approve(cab) == "change-board (role 'approver')"
    assert may_approve(Principal(role="operator")) == "role 'operator'"
    assert may_approve(ANYONE) == "anyone"
    for who in (Principal(tenant="acme"), Principal(role="noc")):
        with pytest.raises(PermissionDenied):
            may_approve(who)
    with pytest.raises(PermissionDenied):  # an approver orders nothing
        may_change(cab, "acme", "workload.tenant")


def test_an_approval_event_is_shown_and_filtered_by_tenant_and_site() -> None:
    ev = api_pb2.WatchEvent(kind=api_pb2.EVENT_KIND_APPROVAL, approval=A.ApprovalEvent(
        hold_id="h1", workload_id="w1", tenant="acme", state=A.APPROVAL_STATE_PENDING,
        decision=D.Decision(placements=[D.GroupPlacement(group_id="g", site_id="ams")],
                            explanation=D.Explanation(summary="best of 3"))))
    assert present.event_line(ev).startswith("approval pending w1 (acme) hold h1 until")
    lookup = events.Lookup(lambda w: "acme", lambda w: frozenset(), lambda l: frozenset(),
                           lambda w, d: 0)
    assert events.matches(ev, "ams", "acme", lookup)
    assert not events.matches(ev, "", "globex", lookup)
    assert not events.matches(ev, "fra", "", lookup)
    raw = ev.approval.SerializeToString()
    back = events.decode("tandem.approvals", raw)
    assert back is not None and back.approval.hold_id == "h1"
    done = A.ApprovalEvent(workload_id="w1", tenant="acme", hold_id="h1",
                           state=A.APPROVAL_STATE_REJECTED, by="cab", comment="too dear")
    assert present.approval_line(done) == "approval rejected w1 (acme) hold h1: cab — too dear"


def test_a_what_if_never_holds_anything_in_the_servers_fold() -> None:
    """WhatIf runs the decider's path on a scratch copy: an order asking for an approval (or a
    verdict's effects) must not leave a hold in the server's own fold."""
    import sys
    import time
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "decisions"))
    from test_decider_robustness import federation, place  # noqa: E402

    from tandem.services.api.whatif import scratch

    d = federation()
    ev = place("what-if-1", "w1")
    ev.place.approval.required = True
    copy = scratch(d)
    out = copy.admit("request", ev.SerializeToString(), time.time())
    assert out.outputs.decisions[0].HasField("hold") and "w1" in copy.holds
    assert d.holds == {}
