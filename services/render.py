"""Plain-text tables for terminals: the inventory as the NOC would read it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tandem.v1 import decision_pb2, inventory_pb2


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.3g}"
    return str(v)


def render_inventory(items: Mapping[str, bytes]) -> str:
    """`items` maps "site/<id>" / "link/<id>" to serialized Site / Link messages."""
    sites = [inventory_pb2.Site.FromString(v) for k, v in items.items() if k.startswith("site/")]
    links = [inventory_pb2.Link.FromString(v) for k, v in items.items() if k.startswith("link/")]
    site_rows = [
        (s.site_id, s.name, s.jurisdiction, "/".join(s.jurisdiction_groups) or "-",
         s.capacity.vcpus, s.capacity.memory_gib, ",".join(s.hypervisors),
         inventory_pb2.SiteState.Name(s.state).removeprefix("SITE_STATE_").lower())
        for s in sites
    ]
    link_rows = [
        (l.link_id, f"{l.site_a} <-> {l.site_b}",
         inventory_pb2.LinkKind.Name(l.kind).removeprefix("LINK_KIND_").lower(),
         l.capacity_ab_mbps, l.capacity_ba_mbps, l.latency_ms, ",".join(l.jurisdictions))
        for l in links
    ]
    return (
        f"{len(sites)} sites\n"
        + table(("site", "name", "country", "groups", "vCPU", "mem GiB", "hypervisors", "state"),
                site_rows)
        + f"\n\n{len(links)} links\n"
        + table(("link", "ends", "kind", "Mbps a>b", "Mbps b>a", "latency ms", "crosses"),
                link_rows)
    )


def render_decision(d: decision_pb2.Decision) -> str:
    """One decision as the NOC reads it: outcome, placements, paths, why, alternatives."""
    kind = decision_pb2.DecisionKind.Name(d.kind).removeprefix("DECISION_KIND_")
    head = f"-- {d.request_id}: workload {d.workload_id!r} ({d.tenant}) {kind}"
    lines = [head]
    if d.kind == decision_pb2.DECISION_KIND_REJECTED:
        lines.append(f"   failed constraint: {d.rejection.constraint}: {d.rejection.detail}")
    if d.placements:
        lines.append("   sites: " + ", ".join(f"{p.group_id} x{p.count} @ {p.site_id}"
                                              for p in d.placements))
    for p in d.paths:
        lines.append(f"   path {p.reservation_id}: {' > '.join(p.site_ids)} "
                     f"[{', '.join(p.link_ids)}] {p.bandwidth_mbps:g} Mbps reserved, "
                     f"{p.latency_ms:.1f} ms")
    if d.cost:
        lines.append(f"   cost {d.cost:.3f}/h, max latency {d.max_latency_ms:.1f} ms")
    lines.append(f"   why: {d.explanation.summary}")
    alts = [a for a in d.explanation.alternatives if a.lost_because][:3]
    for a in alts:
        where = ", ".join(f"{p.group_id}@{p.site_id}" for p in a.placements)
        lines.append(f"   weighed {where}: lost because {a.lost_because}")
    if d.preempted_workload_ids:
        lines.append(f"   preempted: {', '.join(d.preempted_workload_ids)}")
    return "\n".join(lines)
