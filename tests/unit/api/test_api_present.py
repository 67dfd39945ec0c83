"""Pure: how the command line shows decisions, workloads, events and errors (rich, rendered to
text without a terminal)."""

from __future__ import annotations

import time

from google.rpc import error_details_pb2
from rich.console import Console

from tandem.events import new_meta
from tandem.services.api import present
from tandem.services.api.view import DeciderView
from tandem.v1 import api_pb2, decision_pb2
from tandem.v1 import workload_pb2 as W

from test_api_convert import federated, order  # type: ignore[import-not-found]

D = decision_pb2


def text(r: object) -> str:
    c = Console(record=True, width=160, file=open("/dev/null", "w"))
    c.print(r)
    return c.export_text()


def _decision(jurisdiction: str = "EU") -> D.Decision:
    view = DeciderView("unused:0")
    view.decider = federated()
    ev = W.RequestEvent(meta=new_meta("test"), request_id="r1",
                        place=order("w1", jurisdiction=jurisdiction))
    return view.what_if(ev, time.time())


def test_a_decision_shows_where_which_paths_why_and_what_lost() -> None:
    d = _decision()
    out = text(present.decision_view(d))
    assert out.startswith("PLACED  w1 (tenant acme")
    assert "placed: web×2@" in out and "paths" in out and " → " in out
    assert "why: " + d.explanation.summary[:40] in out
    assert "alternatives weighed" in out and "chosen" in out
    assert "steps: 1. " in out


def test_a_rejection_names_its_constraint_and_errors_their_fields() -> None:
    d = _decision("JP")
    out = text(present.error_view("FAILED_PRECONDITION", "rejected", [d]))
    assert "FAILED_PRECONDITION: rejected" in out and "REJECTED" in out
    assert "failed constraint: vm_jurisdiction" in out
    bad = error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field="workload.groups[0].count",
                                                    description="= 0")])
    assert "field workload.groups[0].count: = 0" in text(present.error_view("X", "y", [bad]))


def test_workloads_events_and_order_states_read_as_words() -> None:
    d = _decision()
    st = D.WorkloadStatus(workload_id="w1", phase=D.WORKLOAD_PHASE_PROVISIONING, steps_done=1,
                          steps=4, reason="step 2 of 4: create VMs")
    w = api_pb2.Workload(workload_id="w1", tenant="acme", phase=D.WORKLOAD_PHASE_PROVISIONING,
                         admitted=True, decision=d, status=st,
                         order_state=api_pb2.SERVICE_ORDER_STATE_IN_PROGRESS)
    row = text(present.workloads_table([w]))
    assert "w1" in row and "provisioning" in row and "inProgress" in row
    assert "last status: w1: provisioning [1/4] step 2 of 4" in text(present.workload_view(w))
    ev = api_pb2.WatchEvent(status=st, order_state=api_pb2.SERVICE_ORDER_STATE_IN_PROGRESS)
    assert present.event_line(ev) == "status w1: provisioning [1/4] step 2 of 4: create VMs → inProgress"
    assert present.order_state(api_pb2.SERVICE_ORDER_STATE_COMPLETED) == "completed"
