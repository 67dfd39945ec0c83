"""Traffic that belongs to one workload, on the real emulated WAN (5-site ring on Open vSwitch)
and real Kafka: commands in the core's terms (crossings: links, no ports; address blocks),
resolved by each site's control unit, metered per workload, acknowledged keyed by workload.
"""

from __future__ import annotations

import asyncio

import pytest
from itest_wait import until
from tandem.sdn.wanhosts import BlockAddresses, dump_flows, dump_meters, run_flow

from tandem.sdn.intents import cookie_for
from tandem.sdn.paths import crossing_commands, remove_command
from tandem.v1 import commands_pb2 as c

pytestmark = pytest.mark.integration

SITES, LINKS = ["ams", "ber", "waw"], ["ams--ber", "ber--waw"]
# workload → (reservation, source block and address at ams, target block and address at waw,
# metered rate kbps, offered Mbit/s, UDP port)
WORKLOADS = {
    "wl-a": ("wl-a/d1", "10.128.1.0/24", "10.128.1.10", "10.128.2.0/24", "10.128.2.10",
             4000, 12.0, 5101),
    "wl-b": ("wl-b/d1", "10.128.3.0/24", "10.128.3.10", "10.128.4.0/24", "10.128.4.10",
             10000, 20.0, 5102),
}
OK_STATES = (c.ACK_STATUS_OK, c.ACK_STATUS_NOOP)


async def install(driver, wl: str) -> dict[str, c.SdnAck]:
    rid, src_block, _, dst_block, _, rate, _, _ = WORKLOADS[wl]
    cmds = crossing_commands(reservation_id=rid, generation=1, sites=SITES, links=LINKS,
                             workload_id=wl, ipv4_src=src_block, ipv4_dst=dst_block,
                             rate_kbps=rate)
    assert not any(cmd.install.hops for cmd in cmds.values())  # links only, as the core sends
    # transit and egress first, then the ingress (the core's make-before-break order)
    acks = await driver.run_steps([[cmds["ber"], cmds["waw"]], [cmds["ams"]]])
    bad = {k: (a.status, a.error) for k, a in acks.items() if a.status != c.ACK_STATUS_OK}
    assert not bad, bad
    return acks


async def remove(driver, wl: str) -> dict[str, c.SdnAck]:
    rid = WORKLOADS[wl][0]
    acks = await driver.run_steps([[remove_command(s, rid) for s in SITES]])
    assert all(a.status in OK_STATES for a in acks.values()), acks
    return acks


def flow(wl: str, mbps: float | None = None, seconds: float = 3.0) -> dict:
    _, _, src, _, dst, _, offered, port = WORKLOADS[wl]
    return run_flow("tdm-ams", "tdm-waw", dst, offered if mbps is None else mbps, seconds,
                    port=port, src_ip=src)


def within_rate(res: dict, rate_kbps: int) -> bool:
    """UDP payload received under a meter of `rate_kbps` (it counts frames: headers and the
    100 ms burst allowed for) — the same band as the single-reservation meter test."""
    return 0.80 * rate_kbps / 1000 <= res["recv"]["mbps"] <= 1.06 * rate_kbps / 1000


async def test_two_workloads_between_the_same_sites_each_policed_to_its_own_rate(
        driver, wan, units):
    blocks = BlockAddresses(wan)
    installed: list[str] = []
    try:
        for wl, (_, sb, sa, db, da, *_rest) in WORKLOADS.items():
            blocks.connect("ams", sa, sb, "waw", da, db)
        for wl in WORKLOADS:
            acks = await install(driver, wl)
            installed.append(wl)
            # acknowledged with workload and reservation, keyed by workload id
            for cid, ack in acks.items():
                assert (ack.workload_id, ack.reservation_id) == (wl, WORKLOADS[wl][0])
                assert driver.ack_keys[cid] == wl, (cid, driver.ack_keys[cid])

        # on the switches: one masked entry per workload per site, one meter each at ams
        ams = wan["sites"]["ams"]["bridge"]
        meters = dump_meters(ams)
        for wl, (rid, sb, _, db, _, rate, *_r) in WORKLOADS.items():
            for site in SITES:
                mine = [f for f in dump_flows(wan["sites"][site]["bridge"])
                        if f"cookie={cookie_for(rid, 1):#x}" in f]
                assert len(mine) == 1, (site, wl, dump_flows(wan["sites"][site]["bridge"]))
                assert f"nw_src={sb}" in mine[0] and f"nw_dst={db}" in mine[0], mine[0]
            entry = [f for f in dump_flows(ams) if f"cookie={cookie_for(rid, 1):#x}" in f][0]
            assert meters[int(entry.split("meter:")[1].split(",")[0])] == rate

        # both at once, each offered more than its rate: each is held to its own rate
        res_a, res_b = await asyncio.gather(asyncio.to_thread(flow, "wl-a"),
                                            asyncio.to_thread(flow, "wl-b"))
        for wl, res in (("wl-a", res_a), ("wl-b", res_b)):
            rate, offered = WORKLOADS[wl][5], WORKLOADS[wl][6]
            print(f"{wl}: meter {rate} kbps, offered {res['sent']['sent_bytes'] * 8 / 3e6:.1f} "
                  f"Mbit/s, received {res['recv']['mbps']:.2f} Mbit/s (UDP payload)")
            assert res["sent"]["sent_bytes"] * 8 / 3 / 1e6 > 0.9 * offered  # really offered
            assert within_rate(res, rate), (wl, res)

        # the reconciliation reads the masked entries back as intended: a restarted unit
        # repairs nothing
        before = len(units.log("ams"))
        units.stop("ams")
        units.start("ams")
        units.wait_connected(["ams"])
        await until(lambda: "replayed" in units.log("ams")[before:],
                    lambda: f"the unit's replay: {units.log('ams')[before:]}", every=0.2)
        assert "reconciled switch 0x1:" not in units.log("ams")[before:], \
            units.log("ams")[before:]

        # removing one leaves the other forwarding at its rate
        await remove(driver, "wl-a")
        installed.remove("wl-a")
        assert not [f for f in dump_flows(ams) if "nw_src=10.128.1.0/24" in f]
        res_a, res_b = await asyncio.gather(asyncio.to_thread(flow, "wl-a", 4.0),
                                            asyncio.to_thread(flow, "wl-b"))
        print(f"after removing wl-a: wl-b received {res_b['recv']['mbps']:.2f} Mbit/s, "
              f"wl-a {res_a['recv']['bytes']} bytes")
        assert res_a["recv"]["bytes"] == 0            # no entry: nothing of wl-a crosses
        assert within_rate(res_b, WORKLOADS["wl-b"][5]), res_b
    finally:
        for wl in installed:
            await remove(driver, wl)
        blocks.remove()


async def test_a_crossing_over_an_unknown_link_is_refused_naming_it(driver, units):
    cmds = crossing_commands(reservation_id="wl-x/d1", generation=1, sites=SITES,
                             links=["ams--ber", "ber--nowhere"], workload_id="wl-x",
                             ipv4_src="10.128.9.0/24", rate_kbps=1000)
    acks = await driver.wait_acks(await driver.publish([cmds["ber"]]))
    ack = acks[cmds["ber"].command_id]
    assert ack.status == c.ACK_STATUS_FAILED, ack
    assert "crossing.out_link_id 'ber--nowhere'" in ack.error and "inventory" in ack.error
    assert driver.ack_keys[cmds["ber"].command_id] == "wl-x"
    # a link that exists but does not touch the site
    cmd = crossing_commands(reservation_id="wl-x/d2", generation=1, sites=["ber", "waw"],
                            links=["par--vie"], workload_id="wl-x")["ber"]
    acks = await driver.wait_acks(await driver.publish([cmd]))
    assert "joins par and vie, not this site ber" in acks[cmd.command_id].error


async def test_a_demand_to_a_site_matches_its_source_block_only(driver, wan, units):
    """A demand to a site (not to a group) matches source = the group's block and any
    destination: the block's traffic to the site's host is policed; the host's own is not
    carried by it."""
    blocks = BlockAddresses(wan)
    cmds = crossing_commands(reservation_id="wl-c/feed", generation=1, sites=SITES,
                             links=LINKS, workload_id="wl-c", ipv4_src="10.128.5.0/24",
                             rate_kbps=6000)
    try:
        blocks.source("ams", "10.128.5.10", "10.128.5.0/24", "waw")
        acks = await driver.run_steps([[cmds["ber"], cmds["waw"]], [cmds["ams"]]])
        assert all(a.status == c.ACK_STATUS_OK for a in acks.values()), acks
        host_waw = wan["sites"]["waw"]["host_ip"]
        res = await asyncio.to_thread(run_flow, "tdm-ams", "tdm-waw", host_waw, 15.0, 3.0,
                                      5103, "10.128.5.10")
        print(f"wl-c (to a site): meter 6000 kbps, received {res['recv']['mbps']:.2f} Mbit/s")
        assert within_rate(res, 6000), res
        res = await asyncio.to_thread(run_flow, "tdm-ams", "tdm-waw", host_waw, 2.0, 1.0, 5104)
        assert res["recv"]["bytes"] == 0  # from the host's address: not the workload's traffic
    finally:
        await driver.run_steps([[remove_command(s, "wl-c/feed") for s in SITES]])
        blocks.remove()
