"""Topic contracts: one place, every schema an event with the common envelope."""

from __future__ import annotations

import pytest

from tandem.streams import topics as T
from tandem.v1 import common_pb2


def test_every_topic_schema_carries_the_event_envelope() -> None:
    specs = list(T.SPECS.values()) + [T.SDN_COMMANDS_SPEC, T.COMPUTE_COMMANDS_SPEC]
    for spec in specs:
        meta = spec.schema.DESCRIPTOR.fields_by_name.get("meta")
        assert meta is not None, f"{spec.base}: {spec.schema.DESCRIPTOR.name} has no meta"
        assert meta.message_type.full_name == common_pb2.EventMeta.DESCRIPTOR.full_name
    names = set(common_pb2.EventMeta.DESCRIPTOR.fields_by_name)
    assert {"event_id", "time", "schema_version", "correlation_id"} <= names


def test_prefix_and_site_topics() -> None:
    assert T.SPECS[T.INVENTORY_BASE].name("x.") == "x.tandem.inventory"
    assert T.sdn_commands_topic("ams", "p.") == "p.tandem.sdn.commands.ams"
    assert T.topic_spec("p.tandem.sdn.commands.ams", "p.") is T.SDN_COMMANDS_SPEC
    assert T.topic_spec("p.tandem.decisions", "p.").base == T.DECISIONS_BASE
    with pytest.raises(KeyError):
        T.topic_spec("p.tandem.nope", "p.")
    with pytest.raises(ValueError, match="cannot name a Kafka topic"):
        T.sdn_commands_topic("new york")


def test_inventory_is_compacted_and_telemetry_expires() -> None:
    assert T.SPECS[T.INVENTORY_BASE].config["cleanup.policy"] == "compact"
    assert int(T.SPECS[T.TELEMETRY_BASE].config["retention.ms"]) > 0
    assert T.SPECS[T.REQUESTS_BASE].config["retention.ms"] == "-1"


def test_site_topics_are_sorted_and_paired() -> None:
    names = [n for n, _ in T.site_topics(["b", "a"], "")]
    assert names == ["tandem.sdn.commands.a", "tandem.compute.commands.a",
                     "tandem.sdn.commands.b", "tandem.compute.commands.b"]
