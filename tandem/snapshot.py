"""Snapshots of the decider, so that a worker taking the decider over folds only the log's tail.

Pure (bytes in, bytes out). The decider's state has two parts of very different shape:

- the **engine state** (topology, reservations, admitted workloads, link conditions, ...):
  bounded by the size of the federation and its workloads; stored whole in every snapshot;
- the **dedupe maps** (every input id folded, every request id answered): they only grow, with
  every input ever folded — 100,000 entries after 100,000 inputs. Pickling them whole into every
  snapshot would cost more with each snapshot, so a snapshot stores only the entries added since
  the previous one (`ids delta`), and a restore chains the deltas.

`encode_state` / `decode_state` handle the engine state; `take_delta` / `apply_delta` the dedupe
entries. Every blob starts with a magic and `FORMAT`: a snapshot written by another format is
refused (`SnapshotError`), and the caller folds the log from offset 0 instead — slower, never
wrong. `fingerprint` summarises what later decisions depend on, so a restore can be checked.
"""

from __future__ import annotations

import copyreg
import hashlib
import io
import pickle
import zlib
from types import MappingProxyType
from typing import Any

from tandem.decider import Decider
from tandem.engine.network import Network

# Bump when the decider's or the engine's pickled classes change shape.
FORMAT = 4  # 3: the rollout and the prior decisions (for rollbacks); 4: approval holds
_MAGIC_STATE = b"TDS" + bytes([FORMAT])
_MAGIC_DELTA = b"TDD" + bytes([FORMAT])


class SnapshotError(ValueError):
    """A snapshot that cannot be used (another format, truncated, or not one at all)."""


def _proxy(d: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(d)


def _reduce_proxy(m: MappingProxyType[Any, Any]) -> tuple[Any, ...]:
    return (_proxy, (dict(m),))


def _reduce_network(n: Network) -> tuple[Any, ...]:
    # The compiled network is rebuilt from what defines it; its path caches are derived data
    # (deterministic), recomputed on demand.
    return (Network, (n.topology, n.at, n._cache.k))  # noqa: SLF001


class _Pickler(pickle.Pickler):
    dispatch_table = copyreg.dispatch_table.copy()
    dispatch_table[MappingProxyType] = _reduce_proxy
    dispatch_table[Network] = _reduce_network


def _dumps(obj: object) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=5).dump(obj)
    return zlib.compress(buf.getvalue(), 1)


def _loads(blob: bytes, magic: bytes) -> Any:
    if blob[:4] != magic:
        raise SnapshotError(f"not a decider snapshot of format {FORMAT} (starts {blob[:4]!r})")
    try:
        return pickle.loads(zlib.decompress(blob[4:]))  # noqa: S301 - written by Tandem itself
    except Exception as exc:  # truncated, or classes that changed shape
        raise SnapshotError(f"unreadable decider snapshot: {exc!r}") from None


def encode_state(d: Decider) -> bytes:
    """The engine state of `d` (everything but the dedupe maps)."""
    fields = {"topology": d.topology, "state": d.state, "oper": d.oper, "count": d.count,
              "blocks": d.blocks, "prior": d.prior, "rollout": d.rollout, "holds": d.holds}
    return _MAGIC_STATE + _dumps(fields)


def take_delta(d: Decider) -> bytes:
    """The dedupe entries added since the last call (and forget them as pending)."""
    inputs = [(i, d.inputs_folded[i]) for i in d.new_inputs]
    answers = [(r, *d.requests_answered[r]) for r in d.new_requests if r in d.requests_answered]
    d.new_inputs, d.new_requests = [], []
    return _MAGIC_DELTA + _dumps((inputs, answers))


def restore(state: bytes, deltas: list[bytes]) -> Decider:
    """A decider from an engine state and the chain of dedupe deltas up to it (oldest first)."""
    fields = _loads(state, _MAGIC_STATE)
    d = Decider()
    d.topology, d.state, d.oper = fields["topology"], fields["state"], fields["oper"]
    d.count, d.blocks = fields["count"], fields["blocks"]
    d.prior, d.rollout, d.holds = fields["prior"], fields["rollout"], fields["holds"]
    for blob in deltas:
        inputs, answers = _loads(blob, _MAGIC_DELTA)
        d.inputs_folded.update(inputs)
        for rid, decision_id, digest in answers:
            d.requests_answered[rid] = (decision_id, digest)
    return d


def fingerprint(d: Decider) -> str:
    """A digest of what later decisions depend on (to check a restore against its source)."""
    h = hashlib.blake2b(digest_size=16)
    st = d.state
    h.update(repr((sorted(d.topology.sites), sorted(d.topology.links), d.count,
                   len(d.inputs_folded), len(d.requests_answered), sorted(d.blocks.owned.items()),
                   sorted((k, v.state.value, v.factor) for k, v in d.oper.items()),
                   sorted((k, v.revision) for k, v in d.prior.items()),
                   None if d.rollout is None else (d.rollout.plan_id, d.rollout.stage,
                                                   sorted(d.rollout.waiting)),
                   sorted((k, h.hold_id, h.until) for k, h in d.holds.items()))).encode())
    if st is not None:
        h.update(repr((st.used, sorted(st.site_used.items()), sorted(st.workloads))).encode())
    return h.hexdigest()
