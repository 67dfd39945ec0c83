"""Plain-text tables for terminals: the inventory as the NOC would read it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tandem.v1 import inventory_pb2


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
