"""Diff intended vs actual switch tables → the minimal repair (pure).

Why not wipe-and-reload: a reconnecting switch usually still forwards correctly; deleting and
re-adding every entry would drop traffic and reset counters. We only touch what differs:

- a meter missing is added, one with another rate/burst is modified, one nobody intends is
  deleted (meter ids on our switches are all allocated by the unit);
- an entry missing, or present with other actions/meter/cookie under the same match and
  priority, is (re-)added — OFPFC_ADD replaces it in place;
- an entry carrying our cookie tag that nobody intends is strictly deleted. Entries without
  our tag are left alone (and counted, so an operator's manual entry is visible in the log).

The phases keep the invariants of `state.Plan`: meters before the entries using them, entry
deletes before the meter deletes.
"""

from __future__ import annotations

from dataclasses import dataclass

from tandem.sdn.intents import Tables, is_ours
from tandem.sdn.state import FLOW_ADD, FLOW_DEL, METER_ADD, METER_DEL, METER_MOD, OK, NOOP, Op, Plan


@dataclass(frozen=True, slots=True)
class Diff:
    plan: Plan
    foreign_flows: int


def diff(intended: Tables, actual: Tables) -> Diff:
    p1: list[Op] = []
    p5: list[Op] = []
    for key, m in sorted(intended.meters.items()):
        have = actual.meters.get(key)
        if have is None:
            p1.append(Op(METER_ADD, m))
        elif have != m:
            p1.append(Op(METER_MOD, m))
    for key, m in sorted(actual.meters.items()):
        if key not in intended.meters:
            p5.append(Op(METER_DEL, m))
    p2: list[Op] = []
    p4: list[Op] = []
    foreign = 0
    for key, f in sorted(intended.flows.items(), key=lambda kv: repr(kv[0])):
        if actual.flows.get(key) != f:
            p2.append(Op(FLOW_ADD, f))
    for key, f in sorted(actual.flows.items(), key=lambda kv: repr(kv[0])):
        if key in intended.flows:
            continue
        if is_ours(f.cookie):
            p4.append(Op(FLOW_DEL, f))
        else:
            foreign += 1
    phases = [p for p in (p1, p2, p4, p5) if p]
    return Diff(Plan(OK if phases else NOOP, "", phases), foreign)
