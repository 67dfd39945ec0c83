"""Intended state of one site's switches, folded from its SDN command log (pure).

Why a fold: Kafka is the source of truth. A control unit that restarts replays its site's
command topic from offset 0 through `SiteIntent.apply` and gets the same reservations and the
same meter ids (allocated lowest-free in log order), so it can compare switches against this
state and repair only the difference.

`apply` also returns the make-before-break `Plan` for the command: phases executed in order,
each confirmed by a barrier before the next starts:

1. meters added or modified (a flow may only reference an existing meter);
2. entries of the new generation that do not overwrite an entry of the old one;
3. the switch-over: entries that overwrite an old entry with the same match and priority
   (an OFPFC_ADD replaces actions and cookie atomically) and, on the ingress site, the first
   hop of the path — the entry that steers traffic onto the new path;
4. strict deletes of old entries that nothing overwrote (they carry the old cookie);
5. deletes of meters no longer used.

Across sites, make-before-break needs the orchestrator's order: install the new generation
on the non-ingress sites (egress first; they keep the old generation's entries), then on the
ingress site (switch-over, then its old entries go), then `RemovePath(generation=old)` on the
sites of the old path. `tandem.sdn.paths.reroute_sequence` produces that order.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp

from tandem.sdn.intents import (
    FlowSpec,
    Hop,
    MeterSpec,
    PathIntent,
    burst_for,
    Tables,
    TrafficMatch,
    flow_add,
    flow_delete,
    infra_flows,
    match_key,
    metered_dpid,
    meter_mod,
    path_flows,
    priority_for,
)

METER_ADD, METER_MOD, METER_DEL, FLOW_ADD, FLOW_DEL = (
    "meter_add", "meter_mod", "meter_del", "flow_add", "flow_del",
)


@dataclass(frozen=True, slots=True)
class Op:
    kind: str
    spec: FlowSpec | MeterSpec

    @property
    def dpid(self) -> int:
        return self.spec.dpid

    def to_msg(self) -> Any:
        """The os-ken message for this op, built with datapath=None."""
        if self.kind == FLOW_ADD:
            assert isinstance(self.spec, FlowSpec)
            return flow_add(self.spec)
        if self.kind == FLOW_DEL:
            assert isinstance(self.spec, FlowSpec)
            return flow_delete(self.spec)
        assert isinstance(self.spec, MeterSpec)
        return meter_mod(self.spec, _METER_CMD[self.kind])

    def encode(self, xid: int) -> bytes:
        """Wire bytes of `to_msg()` (same bytes, packed directly: see `tandem.sdn.wire`)."""
        from tandem.sdn import wire

        if self.kind == FLOW_ADD:
            assert isinstance(self.spec, FlowSpec)
            return wire.encode_flow_add(self.spec, xid)
        if self.kind == FLOW_DEL:
            assert isinstance(self.spec, FlowSpec)
            return wire.encode_flow_delete(self.spec, xid)
        assert isinstance(self.spec, MeterSpec)
        return wire.encode_meter_mod(self.spec, _METER_CMD[self.kind], xid)


_METER_CMD = {METER_ADD: ofp.OFPMC_ADD, METER_MOD: ofp.OFPMC_MODIFY, METER_DEL: ofp.OFPMC_DELETE}


OK, NOOP, REJECTED = "ok", "noop", "rejected"


@dataclass(slots=True)
class Plan:
    status: str = OK
    reason: str = ""
    phases: list[list[Op]] = field(default_factory=list)

    @property
    def ops(self) -> list[Op]:
        return [op for phase in self.phases for op in phase]

    def count(self, *kinds: str) -> int:
        return sum(1 for op in self.ops if op.kind in kinds)

    @property
    def dpids(self) -> list[int]:
        return sorted({op.dpid for op in self.ops})


def intent_from_proto(install: Any) -> PathIntent:
    """`tandem.v1.InstallPath` → PathIntent; raises ValueError naming the bad field."""
    if not install.reservation_id:
        raise ValueError("install.reservation_id is empty")
    if not install.hops:
        raise ValueError("install.hops is empty")
    hops = []
    for i, h in enumerate(install.hops):
        if h.datapath_id <= 0 or h.in_port <= 0 or h.out_port <= 0:
            raise ValueError(f"install.hops[{i}]: datapath_id, in_port, out_port must be > 0")
        if h.in_port > ofp.OFPP_MAX or h.out_port > ofp.OFPP_MAX:
            raise ValueError(f"install.hops[{i}]: port number above OFPP_MAX")
        hops.append(Hop(int(h.datapath_id), int(h.in_port), int(h.out_port)))
    m = install.match
    tm = TrafficMatch(m.ipv4_src, m.ipv4_dst, int(m.ip_proto), int(m.dscp))
    if tm.dscp > 63:
        raise ValueError("install.match.dscp above 63")
    for h in hops:
        match_key(h.in_port, tm)  # validates addresses
    if install.rate_kbps > 0xFFFFFFFF:
        raise ValueError("install.rate_kbps above 2^32-1")
    return PathIntent(
        reservation_id=install.reservation_id,
        generation=int(install.generation),
        match=tm,
        hops=tuple(hops),
        rate_kbps=int(install.rate_kbps),
        ingress=bool(install.ingress),
    )


@dataclass(slots=True)
class SiteIntent:
    """Reservations intended on this site's switches: the generations still retained per
    reservation, and per-switch meter ids.

    A non-ingress install keeps the older generation's entries (traffic still arrives on the
    old path until the ingress site switches over); the ingress install drops them after
    the switch-over; a RemovePath of the old generation removes what is left elsewhere."""

    paths: dict[str, dict[int, PathIntent]] = field(default_factory=dict)
    # dpid → reservation id → meter id
    meters: dict[int, dict[str, int]] = field(default_factory=dict)
    # Highest generation removed per reservation: a late install at or below it is stale.
    removed: dict[str, int] = field(default_factory=dict)
    dpids: set[int] = field(default_factory=set)
    _free: dict[int, list[int]] = field(default_factory=dict)
    _next: dict[int, int] = field(default_factory=dict)

    # ------------------------------------------------------------------ fold
    def apply_command(self, cmd: Any) -> Plan:
        """Fold one `tandem.v1.SdnCommand`; bad commands are rejected, never raised."""
        op = cmd.WhichOneof("op")
        if op == "install":
            try:
                intent = intent_from_proto(cmd.install)
            except ValueError as exc:
                return Plan(REJECTED, f"command {cmd.command_id}: {exc}")
            return self.install(intent)
        if op == "remove":
            if not cmd.remove.reservation_id:
                return Plan(REJECTED, f"command {cmd.command_id}: remove.reservation_id is empty")
            return self.remove(cmd.remove.reservation_id, int(cmd.remove.generation))
        return Plan(REJECTED, f"command {cmd.command_id}: no install or remove")

    def latest(self, rid: str) -> PathIntent | None:
        gens = self.paths.get(rid)
        return gens[max(gens)] if gens else None

    def _rid_tables(self, rid: str) -> Tables:
        """Entries and meters of one reservation over all retained generations (newer
        generations win on the same match and priority)."""
        t = Tables()
        gens = self.paths.get(rid, {})
        mids = {dp: tb[rid] for dp, tb in self.meters.items() if rid in tb}
        metered = [p for _, p in sorted(gens.items()) if metered_dpid(p) is not None]
        for _, p in sorted(gens.items()):
            for f in path_flows(p, mids):
                t.add_flow(f)
        if metered:
            rate_src = metered[-1]
            for dp in sorted({metered_dpid(p) for p in metered}):  # type: ignore[type-var]
                t.add_meter(MeterSpec(dp, mids[dp], rate_src.rate_kbps,
                                      burst_for(rate_src.rate_kbps)))
        return t

    def _allocate_meters(self, rid: str) -> None:
        """Meter ids per switch: the lowest free id (freed ids in a heap, O(log n)), so the
        same command log always gives the same ids."""
        gens = self.paths.get(rid, {})
        want = {dp for p in gens.values() if (dp := metered_dpid(p)) is not None}
        for dp, table in self.meters.items():
            if dp not in want and rid in table:
                heapq.heappush(self._free.setdefault(dp, []), table.pop(rid))
        for dp in sorted(want):
            table = self.meters.setdefault(dp, {})
            if rid not in table:
                free = self._free.setdefault(dp, [])
                if free:
                    table[rid] = heapq.heappop(free)
                else:
                    table[rid] = self._next.get(dp, 1)
                    self._next[dp] = table[rid] + 1

    def _change(self, rid: str, mutate: Any, switch_key: Any = None) -> Plan:
        before = self._rid_tables(rid) if rid in self.paths else Tables()
        mutate()
        if not self.paths.get(rid):
            self.paths.pop(rid, None)
        self._allocate_meters(rid)
        after = self._rid_tables(rid)
        p1: list[Op] = []
        for k, m in sorted(after.meters.items()):
            prev = before.meters.get(k)
            if prev is None:
                p1.append(Op(METER_ADD, m))
            elif prev != m:
                p1.append(Op(METER_MOD, m))
        p2: list[Op] = []
        p3: list[Op] = []
        for k, f in after.flows.items():
            prev = before.flows.get(k)
            if prev == f:
                continue
            (p3 if prev is not None or k == switch_key else p2).append(Op(FLOW_ADD, f))
        p4 = [Op(FLOW_DEL, f) for k, f in before.flows.items() if k not in after.flows]
        p5 = [Op(METER_DEL, m) for k, m in sorted(before.meters.items()) if k not in after.meters]
        phases = [p for p in (p1, p2, p3, p4, p5) if p]
        return Plan(OK if phases else NOOP, "" if phases else "no change", phases)

    def install(self, new: PathIntent) -> Plan:
        rid = new.reservation_id
        gens = self.paths.get(rid, {})
        if new.generation <= self.removed.get(rid, -1):
            return Plan(NOOP, f"generation {new.generation} of {rid} was already removed")
        if gens and new.generation < max(gens):
            return Plan(NOOP, f"stale generation {new.generation} < {max(gens)} of {rid}")
        if gens.get(new.generation) == new and (not new.ingress or len(gens) == 1):
            return Plan(NOOP, "already installed")
        self.dpids |= {h.dpid for h in new.hops}

        def mutate() -> None:
            g = self.paths.setdefault(rid, {})
            g[new.generation] = new
            if new.ingress:  # switch-over happens here: older generations go after it
                for old in [x for x in g if x < new.generation]:
                    del g[old]

        h0 = new.hops[0]
        switch_key = ((h0.dpid, priority_for(new.match), match_key(h0.in_port, new.match))
                      if new.ingress else None)
        return self._change(rid, mutate, switch_key)

    def remove(self, rid: str, generation: int) -> Plan:
        gens = self.paths.get(rid, {})
        self.removed[rid] = max(self.removed.get(rid, -1),
                                generation if generation else max(gens, default=0))
        doomed = [g for g in gens if generation == 0 or g <= generation]
        if not doomed:
            return Plan(NOOP, f"{rid}: no generation <= {generation} installed")

        def mutate() -> None:
            for g in doomed:
                del self.paths[rid][g]

        return self._change(rid, mutate)

    # ------------------------------------------------------------------ desired tables
    def desired(self, dpids: set[int] | None = None) -> Tables:
        """Every entry and meter this site's switches should carry (plus infra entries for
        each switch in `dpids`, the switches currently connected)."""
        t = Tables()
        for dp in sorted((dpids or set()) | self.dpids):
            for f in infra_flows(dp):
                t.add_flow(f)
        for rid in sorted(self.paths):
            rt = self._rid_tables(rid)
            t.flows.update(rt.flows)
            t.meters.update(rt.meters)
        if dpids is not None:
            return Tables(
                {k: v for k, v in t.flows.items() if k[0] in dpids},
                {k: v for k, v in t.meters.items() if k[0] in dpids},
            )
        return t
