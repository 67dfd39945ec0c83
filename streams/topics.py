"""Every Kafka topic of Tandem, in one place: name, protobuf schema, key, partitions, config.

This module is the single source for topic creation (`tandem.services.kafka_admin`), for the
Faust application (`tandem.streams.app`) and for the control units. It imports no Kafka or
Faust code, so any process can read it.

Names may carry a prefix (env `TANDEM_TOPIC_PREFIX`, for example "test-1a2b."), so that
several isolated Tandem instances or test runs can share one broker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from google.protobuf.message import Message

from tandem.v1 import alarms_pb2, approval_pb2, commands_pb2, decider_pb2, decision_pb2, inventory_pb2
from tandem.v1 import link_state_pb2, telemetry_pb2, workload_pb2

PREFIX = os.environ.get("TANDEM_TOPIC_PREFIX", "")

DAY_MS = 24 * 3600 * 1000
FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}


@dataclass(frozen=True)
class TopicSpec:
    """A topic's contract. `base` is the unprefixed name; `name(prefix)` the real one."""

    base: str
    schema: type[Message]
    key: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    doc: str = ""
    # "protobuf" (binary) or "json" (the protobuf JSON mapping, for generic consumers).
    encoding: str = "protobuf"

    def name(self, prefix: str | None = None) -> str:
        return (PREFIX if prefix is None else prefix) + self.base


# Base names (without prefix).
INVENTORY_BASE = "tandem.inventory"
LINK_STATE_BASE = "tandem.link-state"
TELEMETRY_BASE = "tandem.telemetry"
REQUESTS_BASE = "tandem.requests"
DECISIONS_BASE = "tandem.decisions"
ALARMS_BASE = "tandem.alarms"
DEAD_LETTERS_BASE = "tandem.dead-letters"
SDN_ACKS_BASE = "tandem.sdn.acks"
COMPUTE_ACKS_BASE = "tandem.compute.acks"
SDN_COMMANDS_BASE = "tandem.sdn.commands."
COMPUTE_COMMANDS_BASE = "tandem.compute.commands."
DECIDER_BASE = "tandem.decider"
CONTROL_BASE = "tandem.control"
WORKLOAD_STATUS_BASE = "tandem.workload-status"
EXECUTOR_STATE_BASE = "tandem.executor-state"
DECIDER_SNAPSHOTS_BASE = "tandem.decider-snapshots"
APPROVALS_BASE = "tandem.approvals"
DECIDER_SNAPSHOT_IDS_BASE = "tandem.decider-snapshot-ids"
# JSON mirrors of the NOC-facing topics (protobuf JSON mapping), for generic consumers.
NOC_DECISIONS_JSON_BASE = "tandem.noc.decisions.json"
NOC_ALARMS_JSON_BASE = "tandem.noc.alarms.json"
NOC_LINK_STATE_JSON_BASE = "tandem.noc.link-state.json"

SPECS: dict[str, TopicSpec] = {
    s.base: s
    for s in (
        TopicSpec(
            INVENTORY_BASE, inventory_pb2.InventoryEvent, "site/<site_id> or link/<link_id>", 1,
            {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
            "Sites and links; compacted, so the latest state of every element is retained.",
        ),
        TopicSpec(LINK_STATE_BASE, link_state_pb2.LinkStateEvent, "link_id", 3, dict(FOREVER),
                  "Link up/down/degraded transitions (the history drives reactions)."),
        TopicSpec(TELEMETRY_BASE, telemetry_pb2.TelemetrySample, "link_id or site_id", 6,
                  {"retention.ms": str(DAY_MS), "segment.ms": str(3600 * 1000)},
                  "Samples from exporters; kept one day."),
        TopicSpec(REQUESTS_BASE, workload_pb2.RequestEvent, "workload_id", 3, dict(FOREVER),
                  "Workload place/release orders; the log the decisions are derived from."),
        TopicSpec(DECISIONS_BASE, decision_pb2.Decision, "workload_id", 3, dict(FOREVER),
                  "Every decision with its explanation; compared against on replay."),
        TopicSpec(APPROVALS_BASE, approval_pb2.ApprovalEvent, "workload_id", 1, dict(FOREVER),
                  "Orders held for an approval (PENDING) and how each hold ended (APPROVED, "
                  "REJECTED, EXPIRED, WITHDRAWN): what workflow systems act on."),
        TopicSpec(ALARMS_BASE, alarms_pb2.Alarm, "site_id, link_id or workload_id", 1,
                  {"retention.ms": str(30 * DAY_MS)}, "Alarms for the NOC."),
        TopicSpec(DEAD_LETTERS_BASE, alarms_pb2.DeadLetter, "origin topic", 1,
                  {"retention.ms": str(30 * DAY_MS)},
                  "Input that could not be processed, whole, with origin and reason."),
        TopicSpec(DECIDER_BASE, decider_pb2.DeciderInput, "none (one partition)", 1,
                  dict(FOREVER),
                  "The decider log: every input the decider folded, in the order it folded "
                  "them, written by the decider itself in the transaction of their outputs "
                  "(one partition: one serial order makes replay exact and prevents two "
                  "workers from reserving the same capacity). Nothing else writes it."),
        TopicSpec(CONTROL_BASE, decider_pb2.DeciderInput, "none (one partition)", 1,
                  dict(FOREVER),
                  "Operator orders for the decider (re-optimisation), as DeciderInput."),
        TopicSpec(DECIDER_SNAPSHOTS_BASE, decider_pb2.DeciderSnapshot, '"head"', 1,
                  {"cleanup.policy": "compact", "max.message.bytes": str(64 * 1024 * 1024),
                   "segment.ms": str(600 * 1000), "min.cleanable.dirty.ratio": "0.1"},
                  "The decider's engine state with the log offset it covers: a worker taking "
                  "over restores the newest and folds only the log after it."),
        TopicSpec(DECIDER_SNAPSHOT_IDS_BASE, decider_pb2.DeciderSnapshot,
                  '"ids/<from>-<to>"', 1,
                  {"cleanup.policy": "compact", "max.message.bytes": str(64 * 1024 * 1024)},
                  "The decider's dedupe entries (input and request ids), one delta per snapshot, "
                  "chained from offset 0."),
        TopicSpec(NOC_DECISIONS_JSON_BASE, decision_pb2.Decision, "workload_id", 1,
                  {"retention.ms": str(7 * DAY_MS)}, "Decisions as JSON (NOC).", "json"),
        TopicSpec(NOC_ALARMS_JSON_BASE, alarms_pb2.Alarm, "element id", 1,
                  {"retention.ms": str(7 * DAY_MS)}, "Alarms as JSON (NOC).", "json"),
        TopicSpec(NOC_LINK_STATE_JSON_BASE, link_state_pb2.LinkStateEvent, "link_id", 1,
                  {"retention.ms": str(7 * DAY_MS)}, "Link state as JSON (NOC).", "json"),
        TopicSpec(SDN_ACKS_BASE, commands_pb2.SdnAck, "workload_id", 3,
                  {"retention.ms": str(7 * DAY_MS)},
                  "Acknowledgements of the SDN control units (co-partitioned with the "
                  "decisions: the executor of a workload reads its acknowledgements)."),
        TopicSpec(COMPUTE_ACKS_BASE, commands_pb2.ComputeAck, "workload_id", 3,
                  {"retention.ms": str(7 * DAY_MS)},
                  "Acknowledgements of the compute units (co-partitioned with the decisions)."),
        TopicSpec(WORKLOAD_STATUS_BASE, decision_pb2.WorkloadStatus, "workload_id", 3,
                  dict(FOREVER), "Where each workload stands: ordered, decided, provisioning, "
                  "active, rejected, failed, rolled back, released."),
        TopicSpec(EXECUTOR_STATE_BASE, decision_pb2.ExecutorState, "workload_id", 3,
                  {"cleanup.policy": "compact"},
                  "The executor's state per workload (compacted; a worker taking a partition "
                  "over resumes from it)."),
    )
}

# Per-site command topics (one partition each: commands to a site are strictly ordered and a
# site's control unit consumes only its own topic). Kept forever: a control unit rebuilds the
# state it must enforce by folding its command topic from offset 0.
SDN_COMMANDS_SPEC = TopicSpec(SDN_COMMANDS_BASE, commands_pb2.SdnCommand, "reservation_id", 1,
                              dict(FOREVER), "Path intents for one site's SDN control unit.")
COMPUTE_COMMANDS_SPEC = TopicSpec(COMPUTE_COMMANDS_BASE, commands_pb2.ComputeCommand, "vm_name", 1,
                                  dict(FOREVER), "VM orders for one site's compute control unit.")

# Resolved names (with the process-wide prefix), for code that simply publishes or consumes.
INVENTORY = SPECS[INVENTORY_BASE].name()
LINK_STATE = SPECS[LINK_STATE_BASE].name()
TELEMETRY = SPECS[TELEMETRY_BASE].name()
REQUESTS = SPECS[REQUESTS_BASE].name()
DECISIONS = SPECS[DECISIONS_BASE].name()
ALARMS = SPECS[ALARMS_BASE].name()
DEAD_LETTERS = SPECS[DEAD_LETTERS_BASE].name()
SDN_ACKS = SPECS[SDN_ACKS_BASE].name()
COMPUTE_ACKS = SPECS[COMPUTE_ACKS_BASE].name()
DECIDER = SPECS[DECIDER_BASE].name()
NOC_DECISIONS_JSON = SPECS[NOC_DECISIONS_JSON_BASE].name()
NOC_ALARMS_JSON = SPECS[NOC_ALARMS_JSON_BASE].name()
NOC_LINK_STATE_JSON = SPECS[NOC_LINK_STATE_JSON_BASE].name()


_LEGAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _site_suffix(site_id: str) -> str:
    if not site_id or not set(site_id) <= _LEGAL:
        raise ValueError(f"site id {site_id!r} cannot name a Kafka topic "
                         "(allowed: letters, digits, '.', '_', '-')")
    return site_id


def sdn_commands_topic(site_id: str, prefix: str | None = None) -> str:
    return SDN_COMMANDS_SPEC.name(prefix) + _site_suffix(site_id)


def compute_commands_topic(site_id: str, prefix: str | None = None) -> str:
    return COMPUTE_COMMANDS_SPEC.name(prefix) + _site_suffix(site_id)


def topic_spec(name: str, prefix: str | None = None) -> TopicSpec:
    """The spec of a resolved topic name (per-site command topics included)."""
    p = PREFIX if prefix is None else prefix
    if not name.startswith(p):
        raise KeyError(f"topic {name!r} does not carry the prefix {p!r}")
    base = name[len(p):]
    if base in SPECS:
        return SPECS[base]
    for spec in (SDN_COMMANDS_SPEC, COMPUTE_COMMANDS_SPEC):
        if base.startswith(spec.base) and len(base) > len(spec.base):
            return spec
    raise KeyError(f"unknown topic {name!r}")


def core_topics(prefix: str | None = None) -> list[tuple[str, TopicSpec]]:
    """The fixed topics every deployment needs, as (resolved name, spec)."""
    return [(s.name(prefix), s) for s in SPECS.values()]


def site_topics(site_ids: list[str], prefix: str | None = None) -> list[tuple[str, TopicSpec]]:
    """The per-site command topics for the given sites."""
    out: list[tuple[str, TopicSpec]] = []
    for site in sorted(site_ids):
        out.append((sdn_commands_topic(site, prefix), SDN_COMMANDS_SPEC))
        out.append((compute_commands_topic(site, prefix), COMPUTE_COMMANDS_SPEC))
    return out
