"""The bad records of `tandem bench fuzz`: every class of hostile input, for every input topic.

Pure generation (seeded): `bad_records(topic_base, cls, n, ctx)` returns n (key, value, tag)
triples. A record that passes its input handler's checks and is refused only later, by the
decider (a reused event id), is dead-lettered from the decider log: its tag — unique, carried
inside the event (`tag_of`) — ties that dead letter back to the record sent.

Classes (`CLASSES`): random bytes, empty, a valid message of the wrong type, an unknown schema
version, NaN / negative / huge / infinite numbers, references to unknown ids, an event id
reused on different content, and ~1 MB payloads. Telemetry samples carry no idempotency key
(a repeated sample id is not a conflict), so "reused_id" does not apply to the telemetry topic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from tandem.events import derived_id, new_meta
from tandem.streams import topics as T
from tandem.v1 import common_pb2, decider_pb2, inventory_pb2 as K, link_state_pb2 as L
from tandem.v1 import telemetry_pb2 as TM, workload_pb2 as W

CLASSES = ("random_bytes", "empty", "wrong_type", "unknown_schema", "bad_number", "unknown_id",
           "reused_id", "oversized")
# The decider's own log is written by the decider only; records for it from outside (operator
# orders) come on `tandem.control`, an input like the others.
TOPICS = (T.INVENTORY_BASE, T.LINK_STATE_BASE, T.REQUESTS_BASE, T.TELEMETRY_BASE,
          T.CONTROL_BASE)
NOT_APPLICABLE = {(T.TELEMETRY_BASE, "reused_id")}
OVERSIZED_BYTES = 1_000_000
BAD_NUMBERS = (float("nan"), -1.0, 1e308, float("inf"), float("-inf"))


@dataclass
class Context:
    """What the valid inventory holds, for records that must look right but one thing."""

    sites: list[str]
    links: list[tuple[str, str, str]]  # (link id, site a, site b)
    used_ids: list[str]  # event ids already used by valid inventory events
    rng: random.Random = field(default_factory=lambda: random.Random(7))


def _meta(schema_version: int = 1, event_id: str | None = None) -> common_pb2.EventMeta:
    m = new_meta("bench/fuzz", event_id=event_id)
    m.schema_version = schema_version
    return m


def request(ctx: Context, i: int, *, schema: int = 1, event_id: str | None = None,
            bw: float = 1.0, to_site: str | None = None, tag: str = "fuzz") -> W.RequestEvent:
    demand = W.TrafficDemand(demand_id="d", from_group="g", bandwidth_mbps=bw, max_latency_ms=100)
    if to_site is not None:
        demand.to_site = to_site
    else:
        demand.to_group = "h"
    return W.RequestEvent(
        meta=_meta(schema, event_id), request_id=f"{tag}-{i}-{ctx.rng.random():.12f}",
        place=W.WorkloadRequest(tenant="fuzz", workload_id=f"{tag}-w{i}",
                                priority=W.PRIORITY_CLASS_BEST_EFFORT,
                                groups=[W.VmGroup(group_id="g", count=1, vcpus=0.5, memory_gib=1),
                                        W.VmGroup(group_id="h", count=1, vcpus=0.5, memory_gib=1)],
                                demands=[demand]))


def _inventory(ctx: Context, i: int, *, schema: int = 1, event_id: str | None = None,
               cap: float = 100.0, site_b: str | None = None) -> K.InventoryEvent:
    a = ctx.sites[i % len(ctx.sites)]
    b = site_b if site_b is not None else ctx.sites[(i + 1) % len(ctx.sites)]
    return K.InventoryEvent(meta=_meta(schema, event_id), link=K.Link(
        link_id=f"fuzz-link-{i}-{ctx.rng.random():.12f}", site_a=a, site_b=b, capacity_ab_mbps=cap,
        capacity_ba_mbps=100.0, latency_ms=5.0))


def _link_state(ctx: Context, i: int, *, schema: int = 1, event_id: str | None = None,
                link: str | None = None, eff: float | None = None) -> L.LinkStateEvent:
    lid = link if link is not None else ctx.links[i % len(ctx.links)][0]
    ev = L.LinkStateEvent(meta=_meta(schema, event_id), link_id=lid,
                          state=L.OPER_STATE_UP, cause=f"bench/fuzz {i} {ctx.rng.random():.12f}")
    if eff is not None:
        ev.state = L.OPER_STATE_DEGRADED
        ev.degradation.CopyFrom(L.Degradation(metric="loss", observed=0.1, threshold=0.01,
                                              effective_capacity_ab_mbps=eff))
    return ev


def _sample(ctx: Context, i: int, *, schema: int = 1, link: str | None = None,
            util: float = 1.0) -> TM.TelemetrySample:
    lid, a, _ = ctx.links[i % len(ctx.links)]
    return TM.TelemetrySample(meta=_meta(schema), link=TM.LinkSample(
        link_id=link if link is not None else lid, from_site=a, utilisation_mbps=util,
        latency_ms=1.0, loss=0.0))


def _decider(ctx: Context, i: int, *, schema: int = 1, event_id: str | None = None,
             inner: Any = None) -> decider_pb2.DeciderInput:
    if inner is None:
        inner = request(ctx, i, tag="fuzz-dec")
    which = {W.RequestEvent: "request", K.InventoryEvent: "inventory",
             L.LinkStateEvent: "link_state"}[type(inner)]
    return decider_pb2.DeciderInput(meta=_meta(schema, event_id), **{which: inner})


def bad_records(base: str, cls: str, n: int, ctx: Context) -> list[tuple[bytes, bytes, str]]:
    """n bad records of class `cls` for the topic `base`: (key, value, tag)."""
    out: list[tuple[bytes, bytes, str]] = []
    for i in range(n):
        key, value, tag = f"fuzz-{cls}-{i}".encode(), b"", ""
        rng = ctx.rng
        bad = BAD_NUMBERS[i % len(BAD_NUMBERS)]
        ev: Any
        if cls == "random_bytes":
            value = rng.randbytes(rng.randint(1, 512))
        elif cls == "empty":
            value = b""
        elif cls == "oversized":
            value = b"\x0a" + rng.randbytes(OVERSIZED_BYTES - 1)
        elif cls == "wrong_type":  # no tag: a wrong type is not this topic's event
            value = {T.INVENTORY_BASE: lambda: _link_state(ctx, i),
                     T.LINK_STATE_BASE: lambda: _sample(ctx, i),
                     T.REQUESTS_BASE: lambda: _inventory(ctx, i),
                     T.TELEMETRY_BASE: lambda: request(ctx, i),
                     T.CONTROL_BASE: lambda: _sample(ctx, i)}[base]().SerializeToString()
        else:
            ev = _event(base, cls, i, ctx, bad)
            value, tag = ev.SerializeToString(), tag_of(ev)
        out.append((key, value, tag))
    return out


def _event(base: str, cls: str, i: int, ctx: Context, bad: float) -> Any:
    """A well-formed event of the topic's own type, wrong in one way (the class)."""
    if cls == "unknown_schema":
        return {T.INVENTORY_BASE: lambda: _inventory(ctx, i, schema=99),
                T.LINK_STATE_BASE: lambda: _link_state(ctx, i, schema=99),
                T.REQUESTS_BASE: lambda: request(ctx, i, schema=99),
                T.TELEMETRY_BASE: lambda: _sample(ctx, i, schema=99),
                T.CONTROL_BASE: lambda: _decider(ctx, i, schema=99)}[base]()
    if cls == "bad_number":
        return {T.INVENTORY_BASE: lambda: _inventory(ctx, i, cap=bad),
                T.LINK_STATE_BASE: lambda: _link_state(ctx, i, eff=bad),
                T.REQUESTS_BASE: lambda: request(ctx, i, bw=bad),
                T.TELEMETRY_BASE: lambda: _sample(ctx, i, util=bad),
                T.CONTROL_BASE: lambda: _decider(ctx, i, inner=request(ctx, i, bw=bad))}[base]()
    if cls == "unknown_id":
        return {T.INVENTORY_BASE: lambda: _inventory(ctx, i, site_b="no-such-site"),
                T.LINK_STATE_BASE: lambda: _link_state(ctx, i, link="no-such-link"),
                T.REQUESTS_BASE: lambda: request(ctx, i, to_site="no-such-site"),
                T.TELEMETRY_BASE: lambda: _sample(ctx, i, link="no-such-link"),
                T.CONTROL_BASE: lambda: _decider(ctx, i, inner=_link_state(
                    ctx, i, link="no-such-link"))}[base]()
    if cls == "reused_id":
        # The id of a valid inventory event folded earlier, on different content: the input
        # handler cannot know it (it does not keep ids), the decider refuses it.
        used = ctx.used_ids[i % len(ctx.used_ids)]
        if base == T.CONTROL_BASE:
            return _decider(ctx, i, event_id=derived_id("decider-input", used))
        return {T.INVENTORY_BASE: lambda: _inventory(ctx, i, event_id=used),
                T.LINK_STATE_BASE: lambda: _link_state(ctx, i, event_id=used),
                T.REQUESTS_BASE: lambda: request(ctx, i, event_id=used)}[base]()
    raise ValueError(f"unknown class {cls!r}")


def tag_of(event: Any) -> str:
    """The unique tag of a fuzz event, also when wrapped for the decider log (`bad_records`)."""
    if isinstance(event, decider_pb2.DeciderInput):
        which = event.WhichOneof("input")
        return tag_of(getattr(event, which)) if which else ""
    if isinstance(event, W.RequestEvent):
        return f"request:{event.request_id}"
    if isinstance(event, K.InventoryEvent):
        return f"inventory:{event.link.link_id}"
    if isinstance(event, L.LinkStateEvent):
        return f"link-state:{event.cause}"
    return ""
