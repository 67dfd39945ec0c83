"""Address blocks for the VM groups of workloads: what makes a reservation match only its own
workload's traffic.

Two workloads between the same two sites used to be matched on the sites' host addresses, so
the second one's flows and meter overwrote the first one's. Now each (workload, group) gets a
block of addresses of its own from `POOL`, its VMs their addresses from the block (the compute
unit gives them; `address`), and every reservation matches source = its group's block and
destination = its target group's block: no two workloads share a match.

Blocks are runs of /24s, a power of two of them, aligned (a group of up to 254 VMs gets one
/24; 255 to 510 two; ...), allocated lowest first, in the decider's fold order: deterministic,
so a replay allocates the same blocks. Pure; part of the decider's state (and its snapshots).
"""

from __future__ import annotations

import heapq
import ipaddress

POOL = ipaddress.IPv4Network("10.128.0.0/9")
BLOCK_BITS = 24  # the unit: one /24
UNITS = 2 ** (BLOCK_BITS - POOL.prefixlen)  # 32,768 /24s


class AddressPoolExhausted(ValueError):
    """No aligned run of /24s is free for a group of that size."""


class Blocks:
    """(workload, group) → (first /24 index, number of /24s).

    Allocation is the lowest aligned free run, found without scanning what is used: a
    one-/24 group (nearly all) takes the lowest free /24 from a heap of freed ones below a
    high-water mark, or the mark itself; larger groups scan aligned starts (rare). With 1,000
    workloads a scan from 0 per allocation was a sixth of the decider's time. The decider
    folds all-or-nothing: `checkpoint()` before an input, `rollback()` if it fails (undoing
    from a journal of this input's changes instead of copying every block per input).
    """

    def __init__(self, owned: dict[tuple[str, str], tuple[int, int]] | None = None) -> None:
        self.owned: dict[tuple[str, str], tuple[int, int]] = {}
        self.used: set[int] = set()
        self._groups: dict[str, set[str]] = {}  # workload -> its groups with a block
        self._holes: list[int] = []  # freed /24s below the mark (may hold stale ones)
        self._mark = 0  # every /24 below it is used or in `_holes`
        self._journal: list[tuple[tuple[str, str], tuple[int, int] | None]] | None = None
        for key, (start, n) in sorted((owned or {}).items()):
            self._own(key, start, n)

    def __getstate__(self) -> dict[str, object]:
        return {"owned": self.owned}  # the rest is derived

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["owned"])  # type: ignore[misc]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Blocks) and self.owned == other.owned

    def __repr__(self) -> str:
        return f"Blocks({len(self.owned)} groups)"

    @staticmethod
    def units_for(vms: int) -> int:
        need = -(-(vms + 2) // 256)  # network and broadcast addresses of the block
        n = 1
        while n < need:
            n *= 2
        return n

    def copy(self) -> Blocks:
        return Blocks(self.owned)

    # ------------------------------------------------------------ all-or-nothing folds
    def checkpoint(self) -> None:
        """Start recording changes (one input's fold)."""
        self._journal = []

    def commit(self) -> None:
        self._journal = None

    def rollback(self) -> None:
        """Undo every change since `checkpoint()`."""
        journal, self._journal = self._journal or [], None
        for key, old in reversed(journal):
            if key in self.owned:
                self._free(key)
            if old is not None:
                self._own(key, *old)

    # ------------------------------------------------------------------------ changes
    def ensure(self, workload: str, group: str, vms: int) -> str:
        """The group's block, allocated (or grown) so that `vms` addresses fit; its CIDR."""
        key = (workload, group)
        have = self.owned.get(key)
        n = self.units_for(vms)
        if have is not None and have[1] >= n:
            return self.cidr(workload, group)
        if have is not None:  # grown: a new block (the VMs are renumbered), maybe overlapping
            self._free(key)
        start = self._lowest_free(n)
        if start is None:
            if have is not None:
                self._own(key, *have)  # refused: the group keeps the block it had
            raise AddressPoolExhausted(f"no free block of {n} x /24 in {POOL} for group "
                                       f"{group!r} of workload {workload!r}")
        if self._journal is not None:
            self._journal.append((key, have))
        self._own(key, start, n)
        return self.cidr(workload, group)

    def release(self, workload: str) -> None:
        for group in sorted(self._groups.get(workload, ())):
            key = (workload, group)
            if self._journal is not None:
                self._journal.append((key, self.owned[key]))
            self._free(key)

    def _lowest_free(self, n: int) -> int | None:
        if n == 1:
            while self._holes:
                u = heapq.heappop(self._holes)
                if u not in self.used:
                    return u
            while self._mark < UNITS and self._mark in self.used:
                self._mark += 1
            return self._mark if self._mark < UNITS else None
        for start in range(0, UNITS, n):
            if not any(u in self.used for u in range(start, start + n)):
                return start
        return None

    def _own(self, key: tuple[str, str], start: int, n: int) -> None:
        self.owned[key] = (start, n)
        self.used.update(range(start, start + n))
        self._groups.setdefault(key[0], set()).add(key[1])
        if start == self._mark:
            self._mark = start + n

    def _free(self, key: tuple[str, str]) -> None:
        start, n = self.owned.pop(key)
        self.used.difference_update(range(start, start + n))
        groups = self._groups[key[0]]
        groups.discard(key[1])
        if not groups:
            del self._groups[key[0]]
        for u in range(start, start + n):
            if u < self._mark:
                heapq.heappush(self._holes, u)

    def cidr(self, workload: str, group: str) -> str:
        """"10.128.3.0/24"; "" when the group has no block."""
        have = self.owned.get((workload, group))
        if have is None:
            return ""
        start, n = have
        base = int(POOL.network_address) + (start << (32 - BLOCK_BITS))
        prefix = BLOCK_BITS - (n.bit_length() - 1)
        return f"{ipaddress.IPv4Address(base)}/{prefix}"

    def address(self, workload: str, group: str, index: int) -> str:
        """The address of VM `index` of the group (the first host address is .1)."""
        have = self.owned.get((workload, group))
        if have is None:
            return ""
        start, n = have
        if not 0 <= index < n * 256 - 2:
            raise ValueError(f"VM {index} of group {group!r} does not fit its block")
        base = int(POOL.network_address) + (start << (32 - BLOCK_BITS))
        return str(ipaddress.IPv4Address(base + 1 + index))
