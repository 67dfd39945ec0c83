"""The broker script's cluster ids never start with "-" (the storage tool would read one as an
option and refuse to format: a fresh CI machine failed so, one in 64 formats)."""

from __future__ import annotations

import base64
import importlib.machinery
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _kafkactl():  # type: ignore[no-untyped-def]
    loader = importlib.machinery.SourceFileLoader("kafkactl", str(REPO / "infra/kafka/kafkactl"))
    spec = importlib.util.spec_from_loader("kafkactl", loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def test_cluster_ids_are_valid_and_never_look_like_an_option() -> None:
    k = _kafkactl()
    ids = [k.new_cluster_id() for _ in range(3000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 and len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)
    src = (REPO / "infra/kafka/kafkactl").read_text()
    assert '"--cluster-id={cluster_id}"' in src  # and passed so that even "-" could not be misread
