"""Requests and link events through Kafka and a real Faust worker to decisions and commands."""

from __future__ import annotations

from collections import Counter

from tandem.services.replay import replay
from tandem.streams import topics as T
from tandem.streams.app import Tandem
from tandem.v1 import alarms_pb2, commands_pb2, decision_pb2
from tandem.v1 import workload_pb2 as W

from conftest import Bus, link_down, place, release  # type: ignore[import-not-found]

D = decision_pb2


async def test_one_decision_per_request_with_commands_and_release(worker: Tandem, bus: Bus) -> None:
    await bus.inventory()
    await bus.send(T.REQUESTS_BASE, place("r1", "w1"), b"w1")
    await bus.send(T.REQUESTS_BASE, place("r1", "w1"), b"w1")  # the same request again
    await bus.send(T.REQUESTS_BASE, place("r2", "w2", web_site_rule="JP"), b"w2")  # infeasible
    decisions = await bus.wait_read(bus.name(T.DECISIONS_BASE), D.Decision,
                                    lambda ds: {d.request_id for d in ds} >= {"r1", "r2"})
    per_request = Counter(d.request_id for d in decisions)
    assert per_request == {"r1": 1, "r2": 1}
    w1 = next(d for d in decisions if d.request_id == "r1")
    assert w1.kind == D.DECISION_KIND_PLACED and w1.paths and w1.explanation.summary
    assert {p.site_id for p in w1.placements} <= {"ams", "fra", "par", "mil"}  # EU only
    w2 = next(d for d in decisions if d.request_id == "r2")
    assert w2.kind == D.DECISION_KIND_REJECTED and w2.rejection.constraint == "vm_jurisdiction"

    # The decision carries its steps: the VMs first (the executor sends them at once: no unit
    # runs in this test to acknowledge them, so the later steps wait), then an install on
    # every site of the reserved path, the ingress last, in site/link terms only.
    path = w1.paths[0]
    assert [s.what for s in w1.steps][:3] == [
        "create VMs", "install new paths (transit and egress)", "switch over at the ingress"]
    installs = {c.site_id: c.install for s in w1.steps for c in s.sdn}
    assert set(installs) == set(path.site_ids)
    assert all(i.rate_kbps == int(path.bandwidth_mbps * 1000) and not i.hops
               for i in installs.values())
    assert installs[path.site_ids[0]].ingress and installs[path.site_ids[0]].crossing.out_link_id \
        == path.link_ids[0]
    web_site = next(p.site_id for p in w1.placements if p.group_id == "web")
    vms = await bus.wait_read(T.compute_commands_topic(web_site, bus.prefix),
                              commands_pb2.ComputeCommand, lambda cs: len(cs) >= 2)
    assert {c.vm.vm_name for c in vms} >= {"w1-web-0", "w1-web-1"}
    assert all(c.ipv4_address for c in vms)
    assert "w1" in worker.tables["workloads"]

    await bus.send(T.REQUESTS_BASE, release("r3", "w1"), b"w1")
    decisions = await bus.wait_read(bus.name(T.DECISIONS_BASE), D.Decision,
                                    lambda ds: any(d.request_id == "r3" for d in ds))
    rel = next(d for d in decisions if d.request_id == "r3")
    assert rel.kind == D.DECISION_KIND_RELEASED
    assert [s.what for s in rel.steps] == ["remove old paths", "delete VMs"]
    assert {c.remove.reservation_id for s in rel.steps for c in s.sdn} == {
        p.reservation_id for p in w1.paths}
    assert "w1" not in worker.tables["workloads"]


async def test_link_failure_triggers_a_reaction_and_replay_matches(worker: Tandem, bus: Bus) -> None:
    await bus.inventory()
    for i in range(4):
        await bus.send(T.REQUESTS_BASE, place(f"r{i}", f"w{i}", bw=400), f"w{i}".encode())
    decisions = await bus.wait_read(bus.name(T.DECISIONS_BASE), D.Decision, lambda ds: len(ds) >= 4)
    placed = [d for d in decisions if d.kind == D.DECISION_KIND_PLACED]
    assert placed
    used = Counter(l for d in placed for p in d.paths for l in p.link_ids)
    busiest = sorted(used.items(), key=lambda t: (-t[1], t[0]))[0][0]
    await bus.send(T.LINK_STATE_BASE, link_down(busiest), busiest.encode())
    decisions = await bus.wait_read(bus.name(T.DECISIONS_BASE), D.Decision,
                                    lambda ds: len(ds) >= 4 + 1)
    reactions = decisions[len(decisions) - (len(decisions) - 4):]
    reactions = [d for d in decisions if d.kind not in (D.DECISION_KIND_PLACED, D.DECISION_KIND_REJECTED)]
    assert reactions, "a link carrying reservations went down but nothing reacted"
    for d in reactions:
        assert d.explanation.summary
        if d.kind != D.DECISION_KIND_DEGRADED:
            assert all(busiest not in p.link_ids for p in d.paths)
    assert worker.tables["link_state"][busiest]

    report = await replay(bus.bootstrap, bus.prefix)
    assert report.ok, report
    assert report.matched == report.derived == len(decisions)


async def test_bad_requests_are_dead_lettered_and_the_worker_goes_on(worker: Tandem, bus: Bus) -> None:
    await bus.inventory()
    bad_ref = place("rb", "wb")
    bad_ref.place.demands[0].to_group = "nope"
    stale = place("rs", "ws")
    stale.meta.schema_version = 2
    await bus.producer.send_and_wait(bus.name(T.REQUESTS_BASE), key=b"x", value=b"\x01\x02garbage")
    await bus.send(T.REQUESTS_BASE, bad_ref)
    await bus.send(T.REQUESTS_BASE, stale)
    await bus.send(T.LINK_STATE_BASE, link_down("no-such-link"))
    await bus.send(T.REQUESTS_BASE, place("ok", "wok"))
    decisions = await bus.wait_read(bus.name(T.DECISIONS_BASE), D.Decision,
                                    lambda ds: any(d.request_id == "ok" for d in ds))
    assert [d.request_id for d in decisions] == ["ok"]
    letters = await bus.wait_read(bus.name(T.DEAD_LETTERS_BASE), alarms_pb2.DeadLetter,
                                  lambda ls: len(ls) >= 4)
    reasons = sorted((l.origin_topic.rsplit(".", 1)[-1], l.reason) for l in letters)
    assert reasons == [("link-state", "unknown_reference"), ("requests", "undecodable"),
                       ("requests", "unknown_reference"), ("requests", "unknown_schema_version")]
    assert all(l.origin_topic and l.payload and l.consumer == "decider" for l in letters)
    assert W.RequestEvent.FromString(
        next(l for l in letters if l.reason == "unknown_reference"
             and l.origin_topic == bus.name(T.REQUESTS_BASE)).payload).request_id == "rb"
