"""The SDN control units on a real emulated WAN (5-site ring on Open vSwitch) and real Kafka.

Each test installs its reservations through Kafka (the path the stream processor uses),
checks the switches with ovs-ofctl and real traffic between site namespaces, and removes
what it installed.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest
from itest_wait import until
from sdn_itest_util import collect, port_tx_bytes
from tandem.sdn.wanhosts import dump_flows, dump_meters, run_flow, sh

from tandem.sdn.intents import TrafficMatch, cookie_for, priority_for
from tandem.sdn.paths import install_commands, remove_command, site_hops
from tandem.v1 import commands_pb2 as c
from tandem.v1 import inventory_pb2, link_state_pb2, telemetry_pb2

pytestmark = pytest.mark.integration

HOST = {"ams": "10.77.1.1", "ber": "10.77.2.1", "par": "10.77.3.1", "vie": "10.77.4.1",
        "waw": "10.77.5.1"}
VIA_BER = ["ams--ber", "ber--waw"]
VIA_PAR = ["ams--par", "par--vie", "vie--waw"]
OK_STATES = (c.ACK_STATUS_OK, c.ACK_STATUS_NOOP)


async def reserve(driver, layout, rid, path, rate_kbps, gen=1, src="ams", dst="waw"):
    cmds = install_commands(layout, reservation_id=rid, generation=gen, src=src, link_path=path,
                            ipv4_src=HOST[src], ipv4_dst=HOST[dst], rate_kbps=rate_kbps)
    steps = [[cmd for s, cmd in reversed(list(cmds.items())) if s != src], [cmds[src]]]
    acks = await driver.run_steps(steps)
    bad = {k: (a.status, a.error) for k, a in acks.items() if a.status != c.ACK_STATUS_OK}
    assert not bad, bad
    return acks


async def release(driver, layout, rid, sites):
    acks = await driver.run_steps([[remove_command(s, rid) for s in sites]])
    assert all(a.status in OK_STATES for a in acks.values()), acks


def cookie_hex(rid, gen):
    return f"cookie={cookie_for(rid, gen):#x}"


def flows_of(bridge, rid, gen):
    return [f for f in dump_flows(bridge) if cookie_hex(rid, gen) in f]


async def test_reservation_appears_as_flows_and_meters(driver, layout, wan):
    acks = await reserve(driver, layout, "r-flows", VIA_BER, 8000)
    assert all(a.confirmed_ms >= a.sent_ms > 0 for a in acks.values())
    for site, in_port, out_port in site_hops(layout, VIA_BER, "ams"):
        br = wan["sites"][site]["bridge"]
        flows = flows_of(br, "r-flows", 1)
        assert len(flows) == 1, (site, dump_flows(br))
        f = flows[0]
        assert f"in_port={in_port}" in f and f"output:{out_port}" in f
        assert "nw_src=10.77.1.1" in f and "nw_dst=10.77.5.1" in f
        if site == "ams":  # policed where it enters the WAN
            meter = int(f.split("meter:")[1].split(",")[0])
            assert dump_meters(br)[meter] == 8000
        else:  # transit and egress only forward
            assert "meter:" not in f and not dump_meters(br)
    # sites off the path have nothing of it
    for site in ("par", "vie"):
        assert not [f for f in dump_flows(wan["sites"][site]["bridge"]) if "priority=10" in f]
    await release(driver, layout, "r-flows", ["ams", "ber", "waw"])
    for site in ("ams", "ber", "waw"):
        br = wan["sites"][site]["bridge"]
        assert not flows_of(br, "r-flows", 1) and not dump_meters(br)


async def test_bad_command_is_acknowledged_as_failure(driver, layout):
    cmd = install_commands(layout, reservation_id="r-bad", generation=1, src="ams",
                           link_path=VIA_BER, ipv4_dst="10.77.300.1")["ams"]
    acks = await driver.wait_acks(await driver.publish([cmd]))
    ack = acks[cmd.command_id]
    assert ack.status == c.ACK_STATUS_FAILED and "ipv4_dst" in ack.error
    # a port the switch does not have: the switch's own error comes back
    cmd = install_commands(layout, reservation_id="r-bad2", generation=1, src="ams",
                           link_path=VIA_BER, ipv4_dst=HOST["waw"])["ams"]
    cmd.install.hops[0].out_port = 0xFFFFFF00  # OFPP_MAX: valid to build, no such port
    acks = await driver.wait_acks(await driver.publish([cmd]))
    ack = acks[cmd.command_id]
    assert ack.status == c.ACK_STATUS_FAILED and "OFPT_ERROR" in ack.error, ack
    await release(driver, layout, "r-bad2", ["ams"])


async def test_traffic_follows_reserved_path_and_is_reported(driver, layout, wan,
                                                              kafka_bootstrap, sdn_prefix):
    await reserve(driver, layout, "r-path", VIA_PAR, 20000)
    before = {s: port_tx_bytes(wan["sites"][s]["bridge"]) for s in ("ams", "par", "vie")}
    res = await asyncio.to_thread(run_flow, "tdm-ams", "tdm-waw", HOST["waw"], 5, 2)
    after = {s: port_tx_bytes(wan["sites"][s]["bridge"]) for s in ("ams", "par", "vie")}
    delta = {s: {p: after[s][p] - before[s].get(p, 0) for p in after[s]} for s in after}
    sent = res["sent"]["sent_bytes"]
    assert res["recv"]["bytes"] >= 0.95 * sent
    # ams: out to par (port 3), not to ber (port 2); par out on 3 (vie); vie out on 3 (waw)
    assert delta["ams"][3] >= 0.95 * sent and delta["ams"][2] < 0.01 * sent
    assert delta["par"][3] >= 0.95 * sent and delta["vie"][3] >= 0.95 * sent
    # port counters reach Kafka as telemetry
    samples = await collect(
        kafka_bootstrap, f"{sdn_prefix}tandem.telemetry", telemetry_pb2.TelemetrySample,
        lambda s: s.port.datapath_id == 1 and s.port.port_no == 3
        and s.port.tx_bytes >= after["ams"][3])
    assert samples
    await release(driver, layout, "r-path", ["ams", "par", "vie", "waw"])


async def test_meter_holds_the_flow_to_its_rate(driver, layout):
    await reserve(driver, layout, "r-meter", VIA_BER, 8000)
    res = await asyncio.to_thread(run_flow, "tdm-ams", "tdm-waw", HOST["waw"], 20, 3)
    got = res["recv"]["mbps"]
    assert res["sent"]["sent_bytes"] * 8 / 3 / 1e6 > 18  # the source really offered ~20
    # UDP payload rate under an 8 Mbit/s (L2) meter: allow for headers and burst
    print(f"meter 8000 kbps: offered {res['sent']['sent_bytes'] * 8 / 3e6:.1f} Mbit/s, "
          f"received {got:.2f} Mbit/s (UDP payload)")
    assert 6.5 <= got <= 8.5, res
    await release(driver, layout, "r-meter", ["ams", "ber", "waw"])


async def test_link_down_moves_traffic_and_removes_old_entries(driver, layout, wan,
                                                               kafka_bootstrap, sdn_prefix):
    from tandem.sdn.paths import shortest_link_path

    await reserve(driver, layout, "r-move", VIA_BER, 10000)
    veth = wan["links"]["ams--ber"]["veth_a"]
    t_down = time.time()
    sh("ip", "link", "set", veth, "down")
    try:
        events = await collect(
            kafka_bootstrap, f"{sdn_prefix}tandem.link-state", link_state_pb2.LinkStateEvent,
            lambda e: e.link_id == "ams--ber" and e.state == link_state_pb2.OPER_STATE_DOWN
            and e.meta.time.seconds >= int(t_down) - 1)
        assert events, "no link-down event on Kafka"
        # stand-in for the engine's decision: the engine's path search, fewest hops avoiding
        # the link; carried out the core's way: a new reservation, then the old one removed
        new_path = shortest_link_path(layout, "ams", "waw", exclude=["ams--ber"])
        assert new_path == VIA_PAR
        await reserve(driver, layout, "r-moved", new_path, 10000)
        await release(driver, layout, "r-move", ["ams", "ber", "waw"])
        for site in ("ams", "ber", "waw"):
            assert not flows_of(wan["sites"][site]["bridge"], "r-move", 1), site
        for site in ("ams", "par", "vie", "waw"):
            assert len(flows_of(wan["sites"][site]["bridge"], "r-moved", 1)) == 1, site
        res = await asyncio.to_thread(run_flow, "tdm-ams", "tdm-waw", HOST["waw"], 4, 2)
        assert res["recv"]["bytes"] >= 0.95 * res["sent"]["sent_bytes"]
        # LLDP no longer hears ber on ams port 2: visible as a missing link
        obs = await collect(
            kafka_bootstrap, f"{sdn_prefix}tandem.inventory", inventory_pb2.InventoryEvent,
            lambda e: e.WhichOneof("change") == "observed" and e.observed.observer_site == "ams"
            and e.observed.port_no == 2
            and e.observed.status == inventory_pb2.LinkObservation.STATUS_MISSING)
        assert obs and obs[0].observed.link_id == "ams--ber"
    finally:
        sh("ip", "link", "set", veth, "up")
    await release(driver, layout, "r-moved", ["ams", "par", "vie", "waw"])


async def test_lldp_sees_the_declared_links(kafka_bootstrap, sdn_prefix, units):
    obs = await collect(
        kafka_bootstrap, f"{sdn_prefix}tandem.inventory", inventory_pb2.InventoryEvent,
        lambda e: e.WhichOneof("change") == "observed" and e.observed.observer_site == "vie"
        and e.observed.status == inventory_pb2.LinkObservation.STATUS_OK
        and e.observed.peer_site == "waw")
    assert obs
    o = obs[0].observed
    assert (o.link_id, o.port_no, o.peer_port_no) == ("vie--waw", 3, 3)


async def test_control_unit_restart_ends_reconciled(driver, layout, wan, units):
    # r-keep enters the WAN at ber (ber polices it), r-lose ends at ber, r-late crosses ber
    await reserve(driver, layout, "r-keep", ["ber--waw"], 3000, src="ber", dst="waw")
    await reserve(driver, layout, "r-lose", ["ams--ber"], 4000, src="ams", dst="ber")
    br = wan["sites"]["ber"]["bridge"]
    keep_before = flows_of(br, "r-keep", 1)[0]
    assert len(flows_of(br, "r-lose", 1)) == 1
    units.stop("ber")
    # tamper while the unit is away: lose an entry, change a meter, add a stray entry of
    # ours and a foreign one
    prio = priority_for(TrafficMatch(HOST["ams"], HOST["ber"]))
    sh("ovs-ofctl", "-O", "OpenFlow13", "--strict", "del-flows", br,
       f"priority={prio},ip,in_port=2,nw_src=10.77.1.1,nw_dst=10.77.2.1")
    meter_keep = int(flows_of(br, "r-keep", 1)[0].split("meter:")[1].split(",")[0])
    sh("ovs-ofctl", "-O", "OpenFlow13", "mod-meter", br,
       f"meter={meter_keep},kbps,burst,stats,bands=type=drop,rate=123,burst_size=16")
    sh("ovs-ofctl", "-O", "OpenFlow13", "add-flow", br,
       "cookie=0x7d000000000000aa,priority=1500,ip,in_port=3,actions=output:1")
    sh("ovs-ofctl", "-O", "OpenFlow13", "add-flow", br, "cookie=0x42,priority=5,in_port=3,actions=drop")
    # a command arrives while the unit is down
    late = install_commands(layout, reservation_id="r-late", generation=1, src="ams",
                            link_path=VIA_BER, ipv4_src="10.77.1.9", ipv4_dst=HOST["waw"],
                            rate_kbps=2000)["ber"]
    await driver.publish([late])  # on the topic once this returns
    units.start("ber")
    acks = await driver.wait_acks([late.command_id], timeout=40)
    assert acks[late.command_id].status == c.ACK_STATUS_OK, acks
    flows = dump_flows(br)
    assert len(flows_of(br, "r-lose", 1)) == 1  # repaired
    assert len(flows_of(br, "r-late", 1)) == 1  # applied after the replay
    assert not [f for f in flows if "0x7d000000000000aa" in f]  # stray of ours removed
    assert [f for f in flows if "cookie=0x42" in f]  # foreign entry left alone
    assert dump_meters(br)[meter_keep] == 3000  # meter repaired
    keep_after = flows_of(br, "r-keep", 1)[0]
    # the untouched entry was not re-installed: its duration kept running
    dur = lambda f: float(f.split("duration=")[1].split("s")[0])  # noqa: E731
    assert dur(keep_after) > dur(keep_before)
    assert "reconciled switch 0x2" in units.log("ber")
    sh("ovs-ofctl", "-O", "OpenFlow13", "--strict", "del-flows", br, "priority=5,in_port=3")
    await release(driver, layout, "r-late", ["ber"])
    await release(driver, layout, "r-keep", ["ber", "waw"])
    await release(driver, layout, "r-lose", ["ams", "ber"])


async def test_ovs_restart_ends_reconciled(driver, layout, wan, units):
    from tandem.services.cli_wan import OVS_SH

    await reserve(driver, layout, "r-ovs", VIA_PAR, 6000)
    ctl = "/usr/share/openvswitch/scripts/ovs-ctl"
    sh(ctl, "stop")
    sh(ctl, "start", "--system-id=random", "--no-monitor")
    assert subprocess.run([str(OVS_SH), "status"]).returncode == 0
    units.wait_connected(timeout=30)
    await until(lambda: all(flows_of(wan["sites"][s]["bridge"], "r-ovs", 1)
                            for s in ("ams", "par", "vie", "waw")),
                "r-ovs restored on every switch", 20, every=0.3)
    for s in ("ams", "par", "vie", "waw"):
        br = wan["sites"][s]["bridge"]
        f = flows_of(br, "r-ovs", 1)
        assert len(f) == 1, (s, dump_flows(br))
        if s == "ams":  # the ingress meter is back too
            meter = int(f[0].split("meter:")[1].split(",")[0])
            assert dump_meters(br)[meter] == 6000
        assert [x for x in dump_flows(br) if "priority=65000" in x]  # LLDP entry back too
    # nothing else of ours came back: every reservation entry left is r-ovs
    for s in wan["sites"]:
        left = {f.split(",")[0] for f in dump_flows(wan["sites"][s]["bridge"])
                if "priority=65000" not in f}
        assert left <= {cookie_hex("r-ovs", 1)}, (s, dump_flows(wan["sites"][s]["bridge"]))
    res = await asyncio.to_thread(run_flow, "tdm-ams", "tdm-waw", HOST["waw"], 3, 2)
    assert res["recv"]["bytes"] >= 0.95 * res["sent"]["sent_bytes"]
    await release(driver, layout, "r-ovs", ["ams", "par", "vie", "waw"])


async def test_lldp_flags_a_link_declared_on_the_wrong_port(kafka_bootstrap, sdn_prefix, units):
    """Declare par--vie on vie's port 3 (really vie--waw's): vie hears waw there → miswired."""
    from aiokafka import AIOKafkaProducer

    from tandem.events import new_meta

    def link_event(port_b: int):
        return inventory_pb2.InventoryEvent(meta=new_meta("test"), link=inventory_pb2.Link(
            link_id="par--vie", site_a="par", site_b="vie", port_a=3, port_b=port_b,
            capacity_ab_mbps=40, capacity_ba_mbps=40))

    topic = f"{sdn_prefix}tandem.inventory"
    p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await p.start()
    try:
        t0 = time.time()
        await p.send_and_wait(topic, link_event(3).SerializeToString(), key=b"link/par--vie")
        obs = await collect(
            kafka_bootstrap, topic, inventory_pb2.InventoryEvent,
            lambda e: e.WhichOneof("change") == "observed" and e.observed.observer_site == "vie"
            and e.observed.status == inventory_pb2.LinkObservation.STATUS_MISWIRED
            and e.meta.time.seconds >= int(t0) - 1)
        assert obs, "no MISWIRED observation"
        o = obs[0].observed
        assert (o.port_no, o.peer_site, o.expected_peer_site) == (3, "waw", "par")
    finally:
        await p.send_and_wait(topic, link_event(2).SerializeToString(), key=b"link/par--vie")
        await p.stop()
