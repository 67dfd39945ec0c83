"""What-if on the API server's fold: the decider's own path on a scratch copy of its state.

Why a scratch copy rather than a deep copy: the engine state and topology are immutable values
(a fold replaces them), so a copy needs only the small per-element maps copied and the maps
that only grow layered (`scratch`); the address blocks are lent and rolled back (`Undoing`).
"""

from __future__ import annotations

import copy
from collections import ChainMap
from typing import Any

from tandem.addressing import Blocks
from tandem.decider import Decider


def scratch(decider: Decider, blocks: Blocks | None = None) -> Decider:
    """A copy of `decider` that a fold can change without touching the original: the engine
    state and topology are immutable values (the fold replaces them), the small per-element
    maps are copied, and the maps that only grow (dedupe entries, prior decisions) are layered
    so that writes land in a fresh layer — copying them whole would cost O(history). The
    address blocks are copied, or `blocks` (an `Undoing` over the original's) is used."""
    c = copy.copy(decider)
    c.oper = dict(decider.oper)
    c.inputs_folded = ChainMap({}, decider.inputs_folded)  # type: ignore[assignment]
    c.requests_answered = ChainMap({}, decider.requests_answered)  # type: ignore[assignment]
    c.prior = ChainMap({}, decider.prior)  # type: ignore[assignment]
    c.holds = dict(decider.holds)  # a what-if may hold or end a hold: never in the original
    c.blocks = decider.blocks.copy() if blocks is None else blocks
    c.new_inputs, c.new_requests = [], []
    return c


class Undoing:
    """The decider's address blocks, lent to one what-if and given back unchanged.

    Why not a copy: copying the blocks rebuilds every allocation (with 1,000 workloads two
    thirds of a what-if's time, profiled). The blocks keep a journal for the decider's
    all-or-nothing folds (`checkpoint`, `rollback`); here the journal is started as the fold
    starts and kept past its `commit`, and `undo` rolls every change back. A what-if runs with
    no await inside, so nothing else touches the blocks meanwhile.
    """

    def __init__(self, real: Blocks) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def checkpoint(self) -> None:
        self._real.checkpoint()

    def commit(self) -> None:
        """Kept: `undo` rolls the what-if's changes back."""

    def rollback(self) -> None:
        self._real.rollback()

    def copy(self) -> Blocks:
        return self._real.copy()

    def undo(self) -> None:
        self._real.rollback()
