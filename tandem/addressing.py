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

import ipaddress
from dataclasses import dataclass, field

POOL = ipaddress.IPv4Network("10.128.0.0/9")
BLOCK_BITS = 24  # the unit: one /24
UNITS = 2 ** (BLOCK_BITS - POOL.prefixlen)  # 32,768 /24s


class AddressPoolExhausted(ValueError):
    """No aligned run of /24s is free for a group of that size."""


@dataclass
class Blocks:
    """(workload, group) → (first /24 index, number of /24s)."""

    owned: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    used: set[int] = field(default_factory=set)

    @staticmethod
    def units_for(vms: int) -> int:
        need = -(-(vms + 2) // 256)  # network and broadcast addresses of the block
        n = 1
        while n < need:
            n *= 2
        return n

    def ensure(self, workload: str, group: str, vms: int) -> str:
        """The group's block, allocated (or grown) so that `vms` addresses fit; its CIDR."""
        key = (workload, group)
        have = self.owned.get(key)
        n = self.units_for(vms)
        if have is not None and have[1] >= n:
            return self.cidr(workload, group)
        if have is not None:  # grown: a new block (the VMs are renumbered)
            self._free(key)
        for start in range(0, UNITS, n):
            if not any(u in self.used for u in range(start, start + n)):
                self.owned[key] = (start, n)
                self.used.update(range(start, start + n))
                return self.cidr(workload, group)
        raise AddressPoolExhausted(f"no free block of {n} x /24 in {POOL} for group {group!r} "
                                   f"of workload {workload!r}")

    def release(self, workload: str) -> None:
        for key in [k for k in self.owned if k[0] == workload]:
            self._free(key)

    def _free(self, key: tuple[str, str]) -> None:
        start, n = self.owned.pop(key)
        self.used.difference_update(range(start, start + n))

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
