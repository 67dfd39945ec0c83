"""A tiny UDP traffic generator/sink for the emulated WAN (iperf3 is not installed).

Run inside a site's namespace:
    ip netns exec tdm-par python -m tandem.sdn.traffic recv --port 5001 --seconds 4
    ip netns exec tdm-ams python -m tandem.sdn.traffic send --dst 10.77.3.1 --port 5001 \
        --mbps 20 --seconds 3 [--src 10.128.1.1]

`--src` binds the source address (one of a workload's block, added to the namespace's host
interface), so the datagrams carry it and hit that workload's reservation, not the host's.

`recv` prints one JSON line: bytes, packets, and the rate measured between the first and the
last datagram (so start-up skew between sender and receiver does not bias it). Both loops are
bounded in time; `send` paces datagrams to the requested rate.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time


def send(dst: str, port: int, mbps: float, seconds: float, size: int = 1200,
         src: str = "") -> dict[str, float]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    if src:
        try:
            s.bind((src, 0))
        except OSError as exc:
            raise SystemExit(f"traffic send: cannot bind source address {src}: {exc} (is it "
                             "on an interface of this namespace?)") from None
    payload = bytearray(size)
    interval = size * 8 / (mbps * 1e6)
    start = time.perf_counter()
    end = start + seconds
    n = 0
    nxt = start
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        if now < nxt:
            if nxt - now > 0.0005:
                time.sleep(nxt - now - 0.0003)
            continue
        # burst up to what is due (keeps the average rate right despite sleep granularity)
        due = min(64, int((now - nxt) / interval) + 1)
        for _ in range(due):
            payload[0:8] = n.to_bytes(8, "big")
            try:
                s.sendto(payload, (dst, port))
            except OSError:
                pass  # ENOBUFS from the shaped veth: the packet is simply lost
            n += 1
        nxt += due * interval
    return {"sent_packets": n, "sent_bytes": n * size, "seconds": time.perf_counter() - start}


def recv(port: int, seconds: float, bind: str = "0.0.0.0") -> dict[str, float]:
    """Count what arrives for `seconds`; says "ready" on stderr once the socket is bound (a
    sender started before that would lose its first packets)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((bind, port))
    print("ready", file=sys.stderr, flush=True)
    s.settimeout(0.2)
    end = time.perf_counter() + seconds
    total = packets = 0
    first = last = 0.0
    first_size = 0
    while time.perf_counter() < end:
        try:
            data = s.recv(65535)
        except socket.timeout:
            continue
        now = time.perf_counter()
        if not packets:
            first, first_size = now, len(data)
        last = now
        total += len(data)
        packets += 1
    span = last - first
    mbps = (total - first_size) * 8 / span / 1e6 if packets > 1 and span > 0 else 0.0
    return {"bytes": total, "packets": packets, "span_s": span, "mbps": mbps}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tandem.sdn.traffic")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("send")
    a.add_argument("--dst", required=True)
    a.add_argument("--port", type=int, default=5001)
    a.add_argument("--mbps", type=float, default=10.0)
    a.add_argument("--seconds", type=float, default=3.0)
    a.add_argument("--size", type=int, default=1200)
    a.add_argument("--src", default="", help="source address to bind (default: the kernel's)")
    b = sub.add_parser("recv")
    b.add_argument("--port", type=int, default=5001)
    b.add_argument("--seconds", type=float, default=4.0)
    args = p.parse_args(argv)
    if args.cmd == "send":
        out = send(args.dst, args.port, args.mbps, min(args.seconds, 60.0), args.size,
                   args.src)
    else:
        out = recv(args.port, min(args.seconds, 60.0))
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
