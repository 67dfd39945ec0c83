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

Across sites, make-before-break needs the orchestrator's order: the new entries on the
non-ingress sites first, then on the ingress site (the switch-over), then the old ones removed
from the sites of the old path. `tandem.steps` produces that order (the core reroutes under a
new reservation id; a new generation of one reservation, handled above, is the same change
within one site).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp

from tandem.sdn.crossing import Resolve, intent_from_proto
from tandem.sdn.intents import (
    FlowSpec,
    MatchKey,
    MeterSpec,
    PathIntent,
    Tables,
    burst_for,
    flow_add,
    flow_delete,
    infra_flows,
    match_key,
    meter_mod,
    metered_dpid,
    path_flows,
    priority_for,
)

FlowKey = tuple[int, int, MatchKey]

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


@dataclass(slots=True)
class SiteIntent:
    """Reservations intended on this site's switches: the generations still retained per
    reservation, and per-switch meter ids.

    A non-ingress install keeps the older generation's entries (traffic still arrives on the
    old path until the ingress site switches over); the ingress install drops them after
    the switch-over; a RemovePath of the old generation removes what is left elsewhere.

    Two reservations may intend an entry with the same match and priority on a switch (the
    core reroutes a demand by installing a new reservation with the same traffic match, then
    removing the old one): a switch holds one of them, so the one installed last wins, and
    when it goes the other's entry is put back (`_owners`)."""

    paths: dict[str, dict[int, PathIntent]] = field(default_factory=dict)
    # dpid → reservation id → meter id
    meters: dict[int, dict[str, int]] = field(default_factory=dict)
    # Highest generation removed per reservation: a late install at or below it is stale.
    removed: dict[str, int] = field(default_factory=dict)
    # Reservation → workload (from its installs; kept after removal, so the acknowledgement
    # of a RemovePath, which names no workload, is keyed by the reservation's workload).
    workloads: dict[str, str] = field(default_factory=dict)
    dpids: set[int] = field(default_factory=set)
    _free: dict[int, list[int]] = field(default_factory=dict)
    _next: dict[int, int] = field(default_factory=dict)
    # entries and meters each reservation intends (cache of `_rid_tables`)
    _tables: dict[str, Tables] = field(default_factory=dict)
    # entry key → reservations intending it; the latest installed (`_order`) is on the switch
    _owners: dict[FlowKey, dict[str, None]] = field(default_factory=dict)
    _order: dict[str, int] = field(default_factory=dict)
    _seq: int = 0

    # ------------------------------------------------------------------ fold
    def apply_command(self, cmd: Any, resolve: Resolve | None = None) -> Plan:
        """Fold one `tandem.v1.SdnCommand`; bad commands are rejected, never raised.
        `resolve` turns a crossing (links) into this site's ports (`crossing.PortBook`)."""
        op = cmd.WhichOneof("op")
        if op == "install":
            ins = cmd.install
            if ins.reservation_id and ins.workload_id:
                self.workloads[ins.reservation_id] = ins.workload_id
            try:
                intent = intent_from_proto(ins, resolve)
            except ValueError as exc:  # CrossingError too: names the link
                return Plan(REJECTED, f"command {cmd.command_id}: {exc}")
            return self.install(intent)
        if op == "remove":
            if not cmd.remove.reservation_id:
                return Plan(REJECTED, f"command {cmd.command_id}: remove.reservation_id is empty")
            return self.remove(cmd.remove.reservation_id, int(cmd.remove.generation))
        return Plan(REJECTED, f"command {cmd.command_id}: no install or remove")

    def workload_of(self, cmd: Any) -> str:
        """The workload a command serves: the install's own, else the reservation's."""
        op = cmd.WhichOneof("op")
        if op is None:
            return ""
        body = getattr(cmd, op)
        return str(getattr(body, "workload_id", "") or self.workloads.get(body.reservation_id, ""))

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

    def _effective(self, key: FlowKey) -> FlowSpec | None:
        """The entry the switch should hold under `key`: the latest installed owner's."""
        owners = self._owners.get(key)
        if not owners:
            return None
        rid = max(owners, key=self._order.__getitem__) if len(owners) > 1 else next(iter(owners))
        return self._tables[rid].flows[key]

    def _change(self, rid: str, mutate: Any, switch_key: Any = None,
                installed: bool = False) -> Plan:
        before = self._tables.get(rid, Tables())
        mutate()
        if not self.paths.get(rid):
            self.paths.pop(rid, None)
        self._allocate_meters(rid)
        after = self._rid_tables(rid) if rid in self.paths else Tables()
        keys = list(dict.fromkeys([*before.flows, *after.flows]))
        eff_before = {k: self._effective(k) for k in keys}
        if installed:
            self._seq += 1
            self._order[rid] = self._seq
        for k in before.flows:
            if k not in after.flows:
                owners = self._owners[k]
                del owners[rid]
                if not owners:
                    del self._owners[k]
        for k in after.flows:
            self._owners.setdefault(k, {})[rid] = None
        if rid in self.paths:
            self._tables[rid] = after
        else:
            self._tables.pop(rid, None)
            self._order.pop(rid, None)
        p1: list[Op] = []
        for mk, m in sorted(after.meters.items()):
            prev = before.meters.get(mk)
            if prev is None:
                p1.append(Op(METER_ADD, m))
            elif prev != m:
                p1.append(Op(METER_MOD, m))
        p2: list[Op] = []
        p3: list[Op] = []
        p4: list[Op] = []
        for k in keys:
            was, now = eff_before[k], self._effective(k)
            if now is not None and now != was:
                (p3 if was is not None or k == switch_key else p2).append(Op(FLOW_ADD, now))
            elif now is None and was is not None:
                p4.append(Op(FLOW_DEL, was))
        p5 = [Op(METER_DEL, m) for mk, m in sorted(before.meters.items())
              if mk not in after.meters]
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
        return self._change(rid, mutate, switch_key, installed=True)

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
        for k in self._owners:
            f = self._effective(k)
            if f is not None:
                t.flows[k] = f
        for rt in self._tables.values():
            t.meters.update(rt.meters)
        if dpids is not None:
            return Tables(
                {k: v for k, v in t.flows.items() if k[0] in dpids},
                {k: v for k, v in t.meters.items() if k[0] in dpids},
            )
        return t
