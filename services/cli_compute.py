"""`tandem compute --site X --driver sim|vsphere|libvirt`: one site's compute control unit.

    tandem compute --site ams --driver sim [--vcpus 512 --memory-gib 2048] [--pidfile F]
    tandem compute --site fra --driver libvirt --libvirt-uri qemu+ssh://root@kvm1/system \
        [--libvirt-pool default --libvirt-network default --libvirt-base-image IMG]
    TANDEM_VSPHERE_URL=https://vc/sdk TANDEM_VSPHERE_USER=… TANDEM_VSPHERE_PASSWORD=… \
        tandem compute --site ams --driver vsphere      (TANDEM_VSPHERE_*: docs/COMPUTE.md)

Consumes the site's compute commands, drives the site's hypervisor, acknowledges each command
and publishes the site's free capacity (`tandem.services.compute.unit`). SIGTERM or Ctrl-C
stops it cleanly (what it fetched is acknowledged first).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("compute", help="one site's compute control unit (hypervisor driver)")
    p.add_argument("--site", required=True)
    p.add_argument("--driver", choices=("sim", "libvirt", "vsphere"), default="sim",
                   help="the site's hypervisor (sim: in memory, for the demo and tests; "
                        "libvirt: a KVM host; vsphere: a vCenter cluster configured by "
                        "TANDEM_VSPHERE_* variables; see docs/COMPUTE.md)")
    p.add_argument("--broker", default=os.environ.get("TANDEM_KAFKA", "127.0.0.1:9092"))
    p.add_argument("--topic-prefix", dest="topic_prefix",
                   default=os.environ.get("TANDEM_TOPIC_PREFIX", ""))
    p.add_argument("--vcpus", type=float, default=512.0, help="sim: capacity")
    p.add_argument("--memory-gib", type=float, default=2048.0, help="sim: capacity")
    p.add_argument("--fail", default="", help="sim: comma-separated VM names whose creation fails")
    p.add_argument("--libvirt-uri", default=os.environ.get("TANDEM_LIBVIRT_URI", "qemu:///system"),
                   help="libvirt: the host (qemu:///system, qemu+ssh://root@kvm1/system, "
                        "test:///path/node.xml)")
    p.add_argument("--libvirt-pool", default="default", help="libvirt: storage pool for disks")
    p.add_argument("--libvirt-network", default="default", help="libvirt: network of the NICs")
    p.add_argument("--libvirt-base-image", default="",
                   help="libvirt: qcow2 image new disks are backed by (the template)")
    p.add_argument("--libvirt-vcpu-ratio", type=float, default=1.0,
                   help="libvirt: vCPUs sold per host CPU")
    p.add_argument("--capacity-interval", type=float, default=10.0)
    p.add_argument("--retry-seconds", type=float, default=20.0,
                   help="how long a command is tried again while the hypervisor cannot be "
                        "reached, before it is acknowledged FAILED (default 20)")
    p.add_argument("--pidfile")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tandem.services.compute.driver import Driver
    from tandem.services.compute.sim import SimConfig, SimDriver
    from tandem.services.compute.unit import ComputeUnit
    from tandem.services.kafka_admin import ensure_topics
    from tandem.streams import compat
    from tandem.streams import topics as T

    compat.apply_all()
    driver: Driver
    if args.driver == "libvirt":
        from tandem.services.compute.driver import DriverError
        from tandem.services.compute.libvirt_driver import LibvirtConfig, LibvirtDriver
        try:
            driver = LibvirtDriver(LibvirtConfig(
                uri=args.libvirt_uri, pool=args.libvirt_pool, network=args.libvirt_network,
                base_image=args.libvirt_base_image, vcpu_ratio=args.libvirt_vcpu_ratio))
        except DriverError as exc:  # wrong URI, pool or network: say so, do not start
            print(f"tandem compute: {exc}", file=sys.stderr)
            return 2
    elif args.driver == "vsphere":
        from tandem.services.compute.driver import DriverError
        from tandem.services.compute.vsphere import VsphereConfig, VsphereDriver
        try:  # connects lazily: a vCenter that is down is reported per command, and retried
            driver = VsphereDriver(VsphereConfig.from_env())
        except DriverError as exc:  # a required variable missing: say so, do not start
            print(f"tandem compute: {exc}", file=sys.stderr)
            return 2
    else:
        driver = SimDriver(SimConfig(vcpus=args.vcpus, memory_gib=args.memory_gib,
                                     fail=frozenset(x for x in args.fail.split(",") if x)))
    if args.pidfile:
        Path(args.pidfile).write_text(f"{os.getpid()}\n")

    async def main() -> None:
        await ensure_topics(args.broker, T.site_topics([args.site], args.topic_prefix))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await ComputeUnit(args.site, driver, args.broker, args.topic_prefix,
                          args.capacity_interval, args.retry_seconds).run(stop)

    try:
        asyncio.run(main())
    finally:
        if args.pidfile:
            Path(args.pidfile).unlink(missing_ok=True)
    return 0
