"""The derived values a `State` carries from parent to child (free compute, workloads per
direction) equal the ones computed from scratch, through admissions, changes, releases,
failures and reactions: the reaction reads only the workloads on the failed link from them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from joint_fixtures import random_topology

from tandem.engine.decide import decide
from tandem.engine.react import fail_link
from tandem.engine.state import State
from tandem.engine.workgen import generate


def _scratch(st: State) -> State:
    return State(st.net, st.used, st.site_used, st.workloads)  # no derived values


def _check(st: State) -> None:
    assert dict(st.users()) == dict(_scratch(st).users())
    assert np.array_equal(st.free_compute(), _scratch(st).free_compute())


def test_derived_index_matches_a_rebuild_through_a_fold() -> None:
    topo = random_topology(7, 12)
    st = State.empty(topo)
    assert "users" in st._memo
    ids: list[str] = []
    for i, req in enumerate(generate(topo, 60, 3)):
        d = decide(st, req)
        st = st.apply(d)
        if d.admitted:
            ids.append(d.workload_id)
        if i % 7 == 6 and ids:
            st = st.release(ids.pop(0))
        if i % 11 == 10 and ids:  # re-send: a change replaces the old placement
            again = decide(st, replace(st.workloads[ids[-1]].request, request_id=f"again-{i}"))
            st = st.apply(again)
        _check(st)
    assert st.users(), "the fold admitted nothing"
    busiest = max(st.users().items(), key=lambda kv: (len(kv[1]), kv[0]))[0]
    link = st.net.link_ids[busiest >> 1]
    after = fail_link(st, link).state
    _check(after)
    for d in (busiest & ~1, busiest | 1):  # nothing is left on the dead link either way
        assert after.used[d] <= 1e-6 and d not in after.users()
    for wid in list(after.workloads):
        after = after.release(wid)
        _check(after)
    assert after.is_empty() and dict(after.users()) == {}
