"""The vCenter simulator for the vSphere driver tests, started through infra/vcsim/vcsimctl.

One simulator serves the session (a developer's running one is reused and left running; one
started here is stopped at the end, by the PID vcsimctl recorded). Tests that kill or disturb
vCenter get their own instance (`private_vcsim`). If the simulator or govc cannot be had
(Go missing, the build failing), the tests FAIL with vcsimctl's message: they never skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from vcsim_util import GOVC, STATE, Vcsim, free_port, vcsimctl


@pytest.fixture(scope="session")
def vcsim() -> Iterator[Vcsim]:
    started = False
    if vcsimctl("status").returncode != 0:
        up = vcsimctl("up")
        if up.returncode != 0:
            pytest.fail(f"the vCenter simulator did not start (infra/vcsim/vcsimctl up):\n"
                        f"{up.stdout}{up.stderr}", pytrace=False)
        started = True
    yield Vcsim(Path(os.environ.get("TANDEM_VCSIM_DIR", str(STATE))))
    if started:
        vcsimctl("down")


@pytest.fixture(scope="session")
def govc_ready() -> Path:
    got = vcsimctl("govc")
    if got.returncode != 0 or not GOVC.exists():
        pytest.fail(f"govc, the outside checker, is not available (infra/vcsim/vcsimctl govc):"
                    f"\n{got.stdout}{got.stderr}", pytrace=False)
    return GOVC


@pytest.fixture
def private_vcsim(vcsim: Vcsim, tmp_path: Path,
                  request: pytest.FixtureRequest) -> Iterator[Vcsim]:
    """An instance of one's own (its own run directory, a fixed port), for tests that kill
    or disturb vCenter; `@pytest.mark.parametrize("private_vcsim", ["-cluster 2"],
    indirect=True)` passes simulator flags. Depends on `vcsim` so the binary is built once."""
    inst = Vcsim(tmp_path / "vcsim", free_port(), getattr(request, "param", ""))
    try:
        inst.up()
    except AssertionError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield inst
    inst.down()
