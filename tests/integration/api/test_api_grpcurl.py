"""grpcurl, an external client knowing nothing of Tandem but what reflection tells it, lists and
calls the API. grpcurl is built from the Go module proxy into .local/go (GOPATH) when the
project has not built it yet (`go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4`);
no Go toolchain fails the test, never skips it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from api_itest_util import order
from google.protobuf import json_format

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
GOPATH = REPO / ".local" / "go"
GRPCURL_VERSION = "v1.9.4"


@pytest.fixture(scope="session")
def grpcurl() -> str:
    explicit = os.environ.get("GRPCURL")
    if explicit:
        return explicit
    built = GOPATH / "bin" / "grpcurl"
    if not built.exists():
        go = shutil.which("go")
        if go is None:
            pytest.fail("grpcurl is not built and no Go toolchain is on PATH to build it "
                        f"(go install github.com/fullstorydev/grpcurl/cmd/grpcurl@{GRPCURL_VERSION})",
                        pytrace=False)
        subprocess.run([go, "install", f"github.com/fullstorydev/grpcurl/cmd/grpcurl@{GRPCURL_VERSION}"],
                       env={**os.environ, "GOPATH": str(GOPATH), "GOFLAGS": "-modcacherw"},
                       check=True, timeout=900)
    return str(built)


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


async def _run(grpcurl: str, port: int, *args: str, data: object = None,
               opts: tuple[str, ...] = ()) -> Ran:
    """grpcurl as a child process, awaited (the server runs on this test's event loop)."""
    cmd = [grpcurl, "-plaintext", "-format-error", *opts]
    if data is not None:
        cmd += ["-d", json.dumps(data)]
    proc = await asyncio.create_subprocess_exec(*cmd, f"127.0.0.1:{port}", *args,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return Ran(proc.returncode or 0, out.decode(), err.decode())


async def test_grpcurl_lists_and_calls_everything(api, grpcurl: str) -> None:  # type: ignore[no-untyped-def]
    listed = await _run(grpcurl, api.port, "list")
    assert listed.returncode == 0, listed.stderr
    assert {"tandem.v1.Tandem", "grpc.health.v1.Health"} <= set(listed.stdout.split())
    methods = (await _run(grpcurl, api.port, "list", "tandem.v1.Tandem")).stdout.split()
    assert {f"tandem.v1.Tandem.{m}" for m in ("PlaceAndConnect", "WhatIf", "Release",
                                             "GetWorkload", "ListWorkloads", "GetTopology",
                                             "WatchEvents", "SetLinkAdminState", "DrainSite",
                                             "Approve", "Reject")
            } <= set(methods)
    health = await _run(grpcurl, api.port, "grpc.health.v1.Health/Check",
                  data={"service": "tandem.v1.Tandem"})
    assert json.loads(health.stdout)["status"] == "SERVING"
    workload = json_format.MessageToDict(order("w-grpcurl"), preserving_proto_field_name=True)
    what = await _run(grpcurl, api.port, "tandem.v1.Tandem/WhatIf", data={"workload": workload})
    assert json.loads(what.stdout)["decision"]["kind"] == "DECISION_KIND_PLACED", what.stderr
    placed = await _run(grpcurl, api.port, "tandem.v1.Tandem/PlaceAndConnect",
                  data={"workload": workload, "idempotency_key": "g-1"})
    assert json.loads(placed.stdout)["decision"]["kind"] == "DECISION_KIND_PLACED", placed.stderr
    got = await _run(grpcurl, api.port, "tandem.v1.Tandem/GetWorkload",
               data={"workload_id": "w-grpcurl"})
    assert json.loads(got.stdout)["workload"]["phase"] in ("WORKLOAD_PHASE_DECIDED",
                                                           "WORKLOAD_PHASE_PROVISIONING")
    assert (await _run(grpcurl, api.port, "tandem.v1.Tandem/ListWorkloads", data={})).returncode == 0
    assert (await _run(grpcurl, api.port, "tandem.v1.Tandem/GetTopology")).returncode == 0
    # A stream: from the start, until grpcurl's own time limit ends it.
    watched = await _run(grpcurl, api.port, "tandem.v1.Tandem/WatchEvents",
                         data={"kinds": ["EVENT_KIND_DECISION"], "tenant": "acme",
                               "from_start": True}, opts=("-max-time", "8"))
    assert '"workload_id": "w-grpcurl"' in watched.stdout, watched.stderr
    assert '"position": "' in watched.stdout
    assert json.loads(watched.stderr[watched.stderr.index("{"):])["code"] == 4  # its deadline
    workload["groups"][0]["count"] = 0
    bad = await _run(grpcurl, api.port, "tandem.v1.Tandem/PlaceAndConnect",
               data={"workload": workload, "idempotency_key": "g-2"})
    err = json.loads(bad.stderr[bad.stderr.index("{"):])  # -format-error: the status on stderr
    assert err["code"] == 3  # INVALID_ARGUMENT, with the field named in the details
    assert err["details"][0]["field_violations"][0]["field"] == "workload.groups[0].count"
    none = await _run(grpcurl, api.port, "tandem.v1.Tandem/Approve",
                      data={"workload_id": "nobody", "idempotency_key": "g-4"})
    assert json.loads(none.stderr[none.stderr.index("{"):])["code"] == 5  # NOT_FOUND
    released = await _run(grpcurl, api.port, "tandem.v1.Tandem/Release",
                    data={"release": {"tenant": "acme", "workload_id": "w-grpcurl"},
                          "idempotency_key": "g-3"})
    assert json.loads(released.stdout)["decision"]["kind"] == "DECISION_KIND_RELEASED"
