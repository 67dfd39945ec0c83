"""`tandem replay`: rebuild the decider's state from offset 0 and check the decision log.

A fresh `Decider` (no state, nothing cached) folds the whole decider log — the same pure code,
the same validation, the same record timestamps the worker used — and every decision it
derives is compared, by event id and then field by field, with the decision published on the
decisions topic. The first divergence is reported with the input that caused it; decisions on
the log that the replay does not derive (and the reverse) are reported too, and so are the
records the replay refuses (they were dead-lettered by the worker: the report counts them by
reason and names the first few). Records on the decisions topic that do not decode are counted,
never a traceback.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from tandem.decider import Decider
from tandem.streams import topics as T
from tandem.streams.readback import read_all_partitions, read_topic
from tandem.v1 import decision_pb2

log = logging.getLogger(__name__)


@dataclass
class ReplayReport:
    inputs: int = 0
    derived: int = 0
    logged: int = 0
    matched: int = 0
    seconds: float = 0.0
    first_divergence: str = ""
    missing_from_log: list[str] = field(default_factory=list)
    not_rederived: list[str] = field(default_factory=list)
    # Decider-log records the replay refused, by reason (the worker dead-lettered them).
    refused: Counter[str] = field(default_factory=Counter)
    refused_examples: list[str] = field(default_factory=list)
    # Records on the decisions topic that are not decisions (written there by something else).
    undecodable_decisions: int = 0

    @property
    def ok(self) -> bool:
        return not self.first_divergence and not self.missing_from_log and not self.not_rederived


def _diff(a: decision_pb2.Decision, b: decision_pb2.Decision) -> str:
    da = json_format.MessageToDict(a)
    db = json_format.MessageToDict(b)
    for key in sorted(set(da) | set(db)):
        if da.get(key) != db.get(key):
            return f"field {key!r}: replay {da.get(key)!r} != log {db.get(key)!r}"
    return "serialized bytes differ"


async def replay(broker: str, prefix: str = "") -> ReplayReport:
    started = time.monotonic()
    report = ReplayReport()
    inputs = await read_topic(broker, T.SPECS[T.DECIDER_BASE].name(prefix))
    logged: dict[str, decision_pb2.Decision] = {}
    for r in await read_all_partitions(broker, T.SPECS[T.DECISIONS_BASE].name(prefix)):
        try:
            d = decision_pb2.Decision.FromString(r.value or b"")
        except DecodeError:
            report.undecodable_decisions += 1
            continue
        if not d.meta.event_id:
            report.undecodable_decisions += 1
            continue
        logged[d.meta.event_id] = d
    report.logged = len(logged)
    decider = Decider()
    derived_ids: set[str] = set()
    for r in inputs:
        out = decider.fold_record(r.value, r.timestamp / 1000.0)
        if out.invalid is not None:
            report.refused[out.invalid.reason] += 1
            if len(report.refused_examples) < 5:
                report.refused_examples.append(f"offset {r.offset}: {out.invalid}")
            continue
        report.inputs += 1
        for d in out.decisions:
            report.derived += 1
            derived_ids.add(d.meta.event_id)
            have = logged.get(d.meta.event_id)
            if have is None:
                report.missing_from_log.append(d.meta.event_id)
                if not report.first_divergence:
                    report.first_divergence = (
                        f"decider input at offset {r.offset} derives decision "
                        f"{d.meta.event_id} for {d.workload_id}, which is not on the decision log")
            elif have.SerializeToString(deterministic=True) != d.SerializeToString(deterministic=True):
                if not report.first_divergence:
                    report.first_divergence = (
                        f"decider input at offset {r.offset}: decision {d.meta.event_id} for "
                        f"{d.workload_id} differs: {_diff(d, have)}")
            else:
                report.matched += 1
    report.not_rederived = sorted(set(logged) - derived_ids)
    report.seconds = time.monotonic() - started
    return report
