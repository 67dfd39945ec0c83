"""`tandem place | whatif | release | approve | workloads | topology | watch` as processes, talking gRPC to
a real server with a real broker, worker and (for --wait) compute unit."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from api_itest_util import compute_only, order, start_compute, stop
from google.protobuf import json_format

pytestmark = pytest.mark.integration


@dataclass
class Ran:
    code: int
    out: str
    err: str


async def tandem(api, *args: str, timeout: float = 120) -> Ran:  # type: ignore[no-untyped-def]
    """`tandem ARGS --api <the test's server>` as a child process, awaited (the server runs on
    this test's event loop)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tandem.cli", *args, "--api", f"127.0.0.1:{api.port}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200", "TANDEM_API_TOKEN": ""})
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return Ran(proc.returncode if proc.returncode is not None else -1, out.decode(),
               err.decode())


def _file(tmp: Path, name: str, msg) -> str:  # type: ignore[no-untyped-def]
    p = tmp / name
    p.write_text(json_format.MessageToJson(msg))
    return str(p)


async def test_the_order_commands_through_the_api(api, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shop = _file(tmp_path, "shop.json", order("cli-shop"))
    what = await tandem(api, "whatif", shop)
    assert what.code == 0, what.err
    assert "PLACED" in what.out and "why:" in what.out and "alternatives weighed" in what.out
    what = await tandem(api, "whatif", shop, "--json")
    assert json.loads(what.out)["decision"]["kind"] == "DECISION_KIND_PLACED"

    placed = await tandem(api, "place", shop, "--json")
    assert placed.code == 0, placed.err
    first = json.loads(placed.out)
    assert first["decision"]["workload_id"] == "cli-shop"
    assert first["order_state"] == "SERVICE_ORDER_STATE_ACKNOWLEDGED"
    again = json.loads((await tandem(api, "place", shop, "--json")).out)  # same file: one order
    assert again["decision"]["meta"]["event_id"] == first["decision"]["meta"]["event_id"]
    shown = await tandem(api, "place", shop)
    assert "PLACED" in shown.out and "cli-shop" in shown.out and "order acknowledged" in shown.out

    listed = await tandem(api, "workloads", "--json")
    assert [w["workload_id"] for w in json.loads(listed.out)["workloads"]] == ["cli-shop"]
    table = await tandem(api, "workloads", "--tenant", "acme")
    assert "cli-shop" in table.out and "acme" in table.out
    one = await tandem(api, "workloads", "cli-shop")
    assert "cli-shop" in one.out and "why:" in one.out
    topo = await tandem(api, "topology")
    assert topo.code == 0 and "ams-fra" in topo.out and "sites" in topo.out

    # An order the engine refuses: exit 1, the failed constraint and the explanation.
    jp = _file(tmp_path, "jp.json", order("cli-jp", jurisdiction="JP"))
    refused = await tandem(api, "place", jp)
    assert refused.code == 1 and "FAILED_PRECONDITION" in refused.err
    assert "vm_jurisdiction" in refused.err and "REJECTED" in refused.err
    # A bad field: exit 1, the field named.
    bad = order("cli-bad")
    bad.groups[0].count = 0
    wrong = await tandem(api, "place", _file(tmp_path, "bad.json", bad))
    assert wrong.code == 1 and "field workload.groups[0].count" in wrong.err
    # A usage mistake: exit 2, no traceback.
    assert (await tandem(api, "workloads", "--phase", "nonsense")).code == 2

    watched = await tandem(api, "watch", "--kind", "decision", "--from-start", "--count", "1",
                           "--json")
    assert json.loads(watched.out)["decision"]["workload_id"] == "cli-shop", watched.err
    line = await tandem(api, "watch", "--kind", "decision", "--from-start", "--count", "1")
    assert "decision placed cli-shop (acme)" in line.out

    released = await tandem(api, "release", "cli-shop", "--tenant", "acme", "--json")
    assert json.loads(released.out)["decision"]["kind"] == "DECISION_KIND_RELEASED", released.err
    gone = await tandem(api, "release", "cli-shop", "--tenant", "acme", "--idempotency-key", "r2")
    assert gone.code == 1 and "NOT_FOUND" in gone.err


async def test_place_wait_shows_progress_until_active(api, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    unit = start_compute(api.bootstrap, api.prefix, "ams", tmp_path)
    try:
        vms = _file(tmp_path, "vms.json", compute_only("cli-vms"))
        ran = await tandem(api, "place", vms, "--wait", "--timeout", "120")
        assert ran.code == 0, ran.err
        assert "cli-vms: provisioning [0/" in ran.err  # progress on stderr, per step
        assert "cli-vms: active" in ran.out and "order completed" in ran.out
    finally:
        stop(unit)


async def test_place_with_approval_then_approve(api, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    held = _file(tmp_path, "held.json", order("cli-held", bw=50))
    placed = await tandem(api, "place", held, "--approval", "--hold-seconds", "600")
    assert placed.code == 0, placed.err
    assert "held for approval until" in placed.out and "order held" in placed.out
    nobody = await tandem(api, "approve", "nobody")
    assert nobody.code == 1 and "NOT_FOUND" in nobody.err
    ok = await tandem(api, "approve", "cli-held", "--comment", "looks fine", "--json")
    assert ok.code == 0, ok.err
    body = json.loads(ok.out)
    assert body["decision"]["steps"] and "looks fine" in body["decision"]["explanation"]["summary"]
    again = await tandem(api, "approve", "cli-held", "--reject")
    assert again.code == 2 and "no order held for approval" in again.err
    watched = await tandem(api, "watch", "--kind", "approval", "--from-start", "--count", "2")
    assert watched.code == 0, watched.err
    assert "approval pending cli-held" in watched.out and "approval approved cli-held" in watched.out
