"""A 4-site ring (s1-s2-s3-s4-s1) laid out like `tandem infra wan up` lays it out."""

from tandem.sdn.paths import LinkPorts, WanLayout

RING = WanLayout(
    dpids={"s1": 1, "s2": 2, "s3": 3, "s4": 4},
    links={
        "l12": LinkPorts("l12", "s1", 2, "s2", 2),
        "l23": LinkPorts("l23", "s2", 3, "s3", 2),
        "l34": LinkPorts("l34", "s3", 3, "s4", 2),
        "l41": LinkPorts("l41", "s4", 3, "s1", 3),
    },
)
SITE_OF_DP = {v: k for k, v in RING.dpids.items()}


class FakeWan:
    """Fake switches wired as RING, and per site what its control unit folds: a `SiteIntent`
    and a `PortBook` (from the ring's layout), so commands in the core's terms (crossings,
    links only) are resolved to ports exactly as a unit does it."""

    def __init__(self) -> None:
        from tandem.sdn.crossing import PortBook
        from tandem.sdn.fake_table import FakeNetwork
        from tandem.sdn.state import SiteIntent

        self.net = FakeNetwork()
        for l in RING.links.values():
            self.net.link((RING.dpids[l.site_a], l.port_a), (RING.dpids[l.site_b], l.port_b))
        self.units = {s: SiteIntent() for s in RING.dpids}
        self.books = {s: PortBook(s) for s in RING.dpids}
        for s, dp in RING.dpids.items():
            self.books[s].learn_layout(RING)
            self.reconcile(s)
        self.after_each_msg = lambda: None

    def reconcile(self, site: str):
        from tandem.sdn.reconcile import diff

        dp = RING.dpids[site]
        d = diff(self.units[site].desired({dp}), self.net.switch(dp).tables())
        for op in d.plan.ops:
            self.net.apply(op.dpid, [op.to_msg()])
        return d

    def send(self, cmd):
        plan = self.units[cmd.site_id].apply_command(cmd, self.books[cmd.site_id].resolve)
        for op in plan.ops:
            assert SITE_OF_DP[op.dpid] == cmd.site_id
            self.net.apply(op.dpid, [op.to_msg()])
            self.after_each_msg()
        return plan

    def walk(self, site: str, pkt: dict):
        """Where a packet from `site`'s attachment (port 1) goes: (trail, exit)."""
        return self.net.walk(RING.dpids[site], RING.host_port, pkt)
