"""`tandem infra wan up|down|status`: the emulated WAN on real Open vSwitch (no Mininet).

One OVS bridge per site (userspace datapath `netdev`, OpenFlow 1.3 only, fail mode secure,
controller = that site's control unit on 127.0.0.1), one veth pair per WAN link shaped with
tc htb to the link's capacity × scale, and one network namespace per site as its host (on the
switch's port 1: the site's local attachment, published to the inventory as
`Site.attachment_port` with `--broker`).
Rates are OVS QoS records of type linux-htb on the veth ports (OVS owns those qdiscs).
Latency is not emulated (this kernel has no netem): it stays a property of the topology.

Ownership: everything created is named with the `tdm` prefix and recorded, as soon as it
exists, in `.local/wan/state.json`; `down` removes exactly what that file lists, so a WAN that
failed half-way up is still cleaned up, and nothing of anyone else's is touched.
Needs root (ip netns, ovs-vsctl, tc).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tandem.cli import UserError

REPO = Path(__file__).resolve().parent.parent
STATE_DIR = REPO / ".local" / "wan"
STATE_FILE = STATE_DIR / "state.json"
OVS_SH = REPO / "infra" / "wan" / "ovs.sh"


def register_wan(infra_sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = infra_sub.add_parser("wan", help="the emulated WAN (OVS bridges, veth links, netns hosts)")
    wsub = p.add_subparsers(dest="wan_command", metavar="VERB", required=True)
    up = wsub.add_parser("up", help="build the emulated WAN from a topology file")
    up.add_argument("--topology", required=True, help="topology file (GraphML, SNDlib, node-link)")
    up.add_argument("--scale", type=float, default=1.0,
                    help="multiply link capacities (Mbps) by this for the tc shaping rate")
    up.add_argument("--of-base", type=int, default=16653,
                    help="OpenFlow port of the first site's control unit (+1 per site)")
    up.add_argument("--broker", default=None,
                    help="also publish sites and links (datapath ids, ports) to Kafka inventory")
    up.add_argument("--prefix", default=None, help="topic name prefix (default: env)")
    up.set_defaults(func=cmd_up)
    down = wsub.add_parser("down", help="remove what `wan up` created (from the state file)")
    down.set_defaults(func=cmd_down)
    st = wsub.add_parser("status", help="show the emulated WAN and its controller connections")
    st.set_defaults(func=cmd_status)


# ------------------------------------------------------------------------------ helpers


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(argv), capture_output=True, text=True)
    if check and res.returncode != 0:
        raise UserError(f"`{' '.join(argv)}` failed ({res.returncode}): "
                        f"{(res.stderr or res.stdout).strip()}")
    return res


def ns(netns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run("ip", "netns", "exec", netns, *argv, check=check)


def load_state(path: Path = STATE_FILE) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise UserError(f"no emulated WAN is up ({path} does not exist)") from None
    except (json.JSONDecodeError, TypeError) as exc:
        raise UserError(f"{path}: not a WAN state file: {exc}") from None


def load_layout(path: Path = STATE_FILE) -> Any:
    """The port layout of the running WAN (`tandem.sdn.paths.WanLayout`)."""
    from tandem.sdn.paths import WanLayout

    return WanLayout.from_json(load_state(path)["layout"])


class _Recorder:
    """Appends every created object to the state file the moment it exists."""

    def __init__(self, layout: dict[str, Any]) -> None:
        self.state: dict[str, Any] = {"layout": layout, "bridges": [], "veths": [], "netns": [],
                                     "qos": []}
        self.save()

    def add(self, kind: str, name: str) -> None:
        self.state[kind].append(name)
        self.save()

    def save(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = STATE_FILE.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1, sort_keys=True))
        tmp.replace(STATE_FILE)


def _need_root() -> None:
    if os.geteuid() != 0:
        raise UserError("the emulated WAN needs root (ip netns, ovs-vsctl, tc)")


def ensure_ovs() -> None:
    res = subprocess.run([str(OVS_SH), "start"], capture_output=True, text=True)
    if res.returncode != 0:
        raise UserError(f"Open vSwitch cannot start: {(res.stderr or res.stdout).strip()}")


def _exists_link(name: str) -> bool:
    return run("ip", "link", "show", name, check=False).returncode == 0


def _netns_list() -> set[str]:
    out = run("ip", "netns", "list", check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _shape(port: str, kbit: int) -> str:
    """Egress rate of one veth end as an OVS QoS (linux-htb): OVS owns the root qdisc of its
    ports (it resets a hand-made tc qdisc on add-port and on restart) and re-applies its own
    QoS after an OVS restart. Returns the QoS record's uuid (ours to destroy on `down`)."""
    out = run("ovs-vsctl", "--", "set", "port", port, "qos=@q", "--", "--id=@q", "create", "qos",
              "type=linux-htb", f"other-config:max-rate={kbit * 1000}",
              "external-ids:owner=tandem-wan").stdout
    return out.strip().splitlines()[-1]


# ------------------------------------------------------------------------------ up / down


def wan_up(topology: Any, scale: float = 1.0, of_base: int = 16653) -> dict[str, Any]:
    """Build the WAN for a `Topology`; returns the state written to the state file."""
    from tandem.sdn.wanplan import plan_wan

    _need_root()
    if STATE_FILE.exists():
        raise UserError(f"an emulated WAN is already up ({STATE_FILE}); run `tandem infra wan "
                        "down` first")
    try:
        plan = plan_wan(topology, scale, of_base)
    except ValueError as exc:
        raise UserError(f"cannot emulate this topology: {exc}") from None
    ensure_ovs()
    bridges = set(run("ovs-vsctl", "list-br").stdout.split())
    namespaces = _netns_list()
    for s in plan.sites:
        if s.bridge in bridges or s.netns in namespaces:
            raise UserError(f"{s.bridge} already exists but is not recorded as ours; remove it "
                            "by hand or pick other site ids")
        for dev in (s.host_peer,):
            if _exists_link(dev):
                raise UserError(f"interface {dev} already exists but is not ours")
    for l in plan.links:
        if _exists_link(l.veth_a) or _exists_link(l.veth_b):
            raise UserError(f"interface {l.veth_a}/{l.veth_b} already exists but is not ours")

    rec = _Recorder(plan.to_json())
    hosts = [(s.host_ip, s.host_mac) for s in plan.sites]
    for s in plan.sites:
        run("ovs-vsctl", "add-br", s.bridge, "--", "set", "bridge", s.bridge,
            "datapath_type=netdev", "protocols=OpenFlow13", "fail_mode=secure",
            f"other-config:datapath-id={s.dpid:016x}", "other-config:disable-in-band=true")
        rec.add("bridges", s.bridge)
        run("ovs-vsctl", "set-controller", s.bridge, f"tcp:127.0.0.1:{s.of_port}", "--",
            "set", "controller", s.bridge, "max_backoff=1000", "inactivity_probe=5000")
        run("ip", "netns", "add", s.netns)
        rec.add("netns", s.netns)
        run("ip", "link", "add", s.host_peer, "type", "veth", "peer", "name", s.host_if)
        rec.add("veths", s.host_peer)
        run("ip", "link", "set", s.host_if, "netns", s.netns)
        ns(s.netns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        ns(s.netns, "ip", "link", "set", "lo", "up")
        ns(s.netns, "ip", "link", "set", s.host_if, "address", s.host_mac)
        ns(s.netns, "ip", "addr", "add", f"{s.host_ip}/16", "dev", s.host_if)
        ns(s.netns, "ip", "link", "set", s.host_if, "up")
        ns(s.netns, "ethtool", "-K", s.host_if, "tx", "off")
        for ip, mac in hosts:  # no ARP across the WAN: reservations carry IPv4 only
            if ip != s.host_ip:
                ns(s.netns, "ip", "neigh", "replace", ip, "lladdr", mac, "dev", s.host_if,
                   "nud", "permanent")
        run("sysctl", "-qw", f"net.ipv6.conf.{s.host_peer}.disable_ipv6=1", check=False)
        run("ip", "link", "set", s.host_peer, "up")
        run("ovs-vsctl", "add-port", s.bridge, s.host_peer, "--", "set", "interface",
            s.host_peer, "ofport_request=1")
    by_site = {s.site_id: s for s in plan.sites}
    for l in plan.links:
        run("ip", "link", "add", l.veth_a, "type", "veth", "peer", "name", l.veth_b)
        rec.add("veths", l.veth_a)
        for dev, kbit, site, port in ((l.veth_a, l.rate_ab_kbit, l.site_a, l.port_a),
                                      (l.veth_b, l.rate_ba_kbit, l.site_b, l.port_b)):
            run("sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1", check=False)
            run("ip", "link", "set", dev, "up")
            br = by_site[site].bridge
            run("ovs-vsctl", "add-port", br, dev, "--", "set", "interface", dev,
                f"ofport_request={port}")
            rec.add("qos", _shape(dev, kbit))
    _check_ports(plan)
    return rec.state


def _check_ports(plan: Any) -> None:
    """OVS may ignore ofport_request (a port number in use): the layout must be what it says."""
    for s in plan.sites:
        got = run("ovs-vsctl", "get", "interface", s.host_peer, "ofport").stdout.strip()
        if got != "1":
            raise UserError(f"{s.host_peer} got OpenFlow port {got}, expected 1")
    for l in plan.links:
        for dev, port in ((l.veth_a, l.port_a), (l.veth_b, l.port_b)):
            got = run("ovs-vsctl", "get", "interface", dev, "ofport").stdout.strip()
            if got != str(port):
                raise UserError(f"{dev} got OpenFlow port {got}, expected {port}")


def wan_down() -> list[str]:
    """Remove exactly what the state file lists; returns what was removed."""
    _need_root()
    if not STATE_FILE.exists():
        return []
    state = load_state()
    removed = []
    for br in state.get("bridges", []):
        if run("ovs-vsctl", "--timeout=10", "--if-exists", "del-br", br, check=False).returncode == 0:
            removed.append(f"bridge {br}")
    for uuid in state.get("qos", []):
        if run("ovs-vsctl", "--if-exists", "destroy", "qos", uuid, check=False).returncode == 0:
            removed.append(f"qos {uuid}")
    for dev in state.get("veths", []):
        if _exists_link(dev):
            run("ip", "link", "del", dev, check=False)
            removed.append(f"veth {dev}")
    present = _netns_list()
    for n in state.get("netns", []):
        if n in present:
            run("ip", "netns", "del", n, check=False)
            removed.append(f"netns {n}")
    STATE_FILE.unlink()
    return removed


def wan_status() -> list[dict[str, Any]]:
    state = load_state()
    layout = state["layout"]
    rows = []
    bridges = set(run("ovs-vsctl", "list-br", check=False).stdout.split())
    for sid, s in layout["sites"].items():
        connected = ""
        if s["bridge"] in bridges:
            connected = run("ovs-vsctl", "get", "controller", s["bridge"], "is_connected",
                            check=False).stdout.strip()
        rows.append({"site": sid, "dpid": s["dpid"], "bridge": s["bridge"],
                     "present": s["bridge"] in bridges, "controller": f"127.0.0.1:{s['of_port']}",
                     "connected": connected == "true", "host": s["host_ip"]})
    return rows


# ------------------------------------------------------------------------------ CLI handlers


def _load_topology(path: str) -> Any:
    from tandem.engine.loaders import load_topology

    try:
        return load_topology(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except Exception as exc:  # the loaders' errors name file, element and field
        if type(exc).__name__ in ("TopologyFileError", "ValueError"):
            raise UserError(str(exc)) from None
        raise


def cmd_up(args: argparse.Namespace) -> int:
    topo = _load_topology(args.topology)
    was_up = STATE_FILE.exists()
    try:
        state = wan_up(topo, args.scale, args.of_base)
    except UserError:
        if not was_up and STATE_FILE.exists():  # a half-built WAN of this invocation
            removed = wan_down()
            print(f"wan up failed; cleaned up {len(removed)} objects it had created")
        raise
    lay = state["layout"]
    print(f"emulated WAN up: {len(lay['sites'])} sites, {len(lay['links'])} links "
          f"(state: {STATE_FILE})")
    for sid, s in lay["sites"].items():
        print(f"  {sid:<12} dpid {s['dpid']:<3} bridge {s['bridge']:<15} host {s['host_ip']} "
              f"on port {lay.get('host_port', 1)} (netns {s['netns']})  control unit: tandem sdn --site {sid} "
              f"--of-port {s['of_port']}")
    for lid, l in lay["links"].items():
        print(f"  {lid:<20} {l['site_a']}:{l['port_a']} <-> {l['site_b']}:{l['port_b']}  "
              f"{l['rate_ab_kbit']}/{l['rate_ba_kbit']} kbit/s  ({l['veth_a']}/{l['veth_b']})")
    if args.broker:
        from tandem.sdn.publish import publish_inventory

        try:
            n = publish_inventory(args.broker, topo, lay, args.prefix)
        except Exception as exc:  # the WAN is up; say why the publish failed
            raise UserError(f"WAN is up, but publishing its inventory to {args.broker} "
                            f"failed: {exc}") from None
        print(f"published {n} inventory events (sites with datapath ids and attachment "
              f"ports, links with ports) to {args.broker}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    removed = wan_down()
    print(f"emulated WAN down: removed {len(removed)} objects" if removed else
          "no emulated WAN was up")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    rows = wan_status()
    print(f"{'site':<12} {'dpid':>4} {'bridge':<15} {'present':<8} {'controller':<18} "
          f"{'connected':<9} host")
    for r in rows:
        print(f"{r['site']:<12} {r['dpid']:>4} {r['bridge']:<15} {str(r['present']):<8} "
              f"{r['controller']:<18} {str(r['connected']):<9} {r['host']}")
    return 0 if all(r["present"] for r in rows) else 1


if __name__ == "__main__":  # python -m tandem.services.cli_wan up --topology F
    import sys

    parser = argparse.ArgumentParser(prog="cli_wan")
    register_wan(parser.add_subparsers(dest="x", required=True))
    a = parser.parse_args(["wan", *sys.argv[1:]])
    try:
        sys.exit(a.func(a))
    except UserError as e:
        print(f"tandem: error: {e}", file=sys.stderr)
        sys.exit(2)
