"""mode's worker (what `faust.Worker` is): two behaviours a production worker must not have.

1. It binds SIGUSR2 to an interactive debugger (`Worker._on_sigusr2` starts pdb on the
   terminal): on a server that hangs the process. Tandem binds SIGUSR2 to a stack dump instead.
2. It leaves the root logger at DEBUG and filters in its handlers: every `log.debug` in Faust
   and aiokafka then builds a record, formatting each message's payload (~5 % of the decider's
   CPU in a py-spy profile). The requested level goes on the root logger itself.

`configure(worker, on_sigusr2)` applies both to one worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

UPSTREAM = "mode-streaming: by design (debugging aid); not reported"
WRITTEN_FOR = {"mode-streaming": "0.7.1", "faust-streaming": "0.15.3"}


def configure(worker: Any, on_sigusr2: Callable[[], None]) -> None:
    worker._on_sigusr2 = on_sigusr2  # noqa: SLF001 - the method mode binds to SIGUSR2
    worker.on_setup_root_logger = lambda root, level: root.setLevel(level)


def check() -> list[str]:
    """What this workaround relies on, if it is gone."""
    from mode.worker import Worker

    return [name for name in ("_on_sigusr2", "on_setup_root_logger")
            if not hasattr(Worker, name)]
