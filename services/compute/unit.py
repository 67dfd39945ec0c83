"""A site's compute control unit: its hypervisor driven from its command topic.

`tandem compute --site X --driver sim|vsphere|libvirt` consumes `tandem.compute.commands.<X>`
(its own site's commands only, `read_committed`), applies each through the site's driver (in a
thread: drivers block), and acknowledges each on `tandem.compute.acks` (keyed by workload id,
for the executor) with the result, the VM's addresses, the hypervisor's reference and the time
it took; a command the hypervisor refuses is acknowledged FAILED with its reason. A hypervisor
that cannot be reached at all (`HypervisorUnreachable`) is tried again, backing off, for
`retry_s` (default 20 s, under the executor's 30 s step timeout) before the command is
acknowledged FAILED: a vCenter restarting is outwaited, and an undo (delete, power off) sent
while it was away still lands when it is back within that time. Offsets are
committed once the acknowledgements are on the broker: a unit that dies re-applies what it had
not acknowledged, which the idempotent driver turns into NOOPs. Every `capacity_interval_s` it
publishes the site's real free compute as telemetry (`SiteSample`), which the engine uses.

When the broker is unreachable it says so once, goes on applying what it already fetched, and
says when it is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tandem.events import new_meta
from tandem.services.compute.driver import Driver, DriverError, HypervisorUnreachable, Result
from tandem.streams import topics as T
from tandem.streams.deadletter import build_dead_letter
from tandem.v1 import commands_pb2, telemetry_pb2
from tandem.validation import InvalidEvent, check_meta, decode

log = logging.getLogger(__name__)
C = commands_pb2.ComputeCommand


def apply(driver: Driver, cmd: commands_pb2.ComputeCommand) -> Result:
    """One command through the driver (blocking)."""
    vm = cmd.vm
    if cmd.action == C.ACTION_CREATE:  # powered off: the executor powers it on once connected
        return driver.create(vm.vm_name, vm.workload_id, vm.vcpus, vm.memory_gib,
                             vm.storage_gib, cmd.ipv4_address, power_on=False)
    if cmd.action == C.ACTION_MIGRATE_IN:
        return driver.migrate_in(vm.vm_name, vm.workload_id, vm.vcpus, vm.memory_gib,
                                 vm.storage_gib, cmd.ipv4_address, power_on=False)
    if cmd.action in (C.ACTION_DELETE, C.ACTION_MIGRATE_OUT):
        return driver.delete(vm.vm_name)
    if cmd.action == C.ACTION_POWER_ON:
        return driver.power(vm.vm_name, True)
    if cmd.action == C.ACTION_POWER_OFF:  # undoing a power-on: a VM already gone is off
        return driver.power(vm.vm_name, False) if driver.get(vm.vm_name) else Result(False)
    raise DriverError(f"action {cmd.action} is not one a compute unit knows")


def ack_for(site: str, cmd: commands_pb2.ComputeCommand, res: Result | None, error: str,
            took_ms: float) -> commands_pb2.ComputeAck:
    if error:
        status = commands_pb2.ACK_STATUS_FAILED
    else:
        status = commands_pb2.ACK_STATUS_OK if res and res.changed else commands_pb2.ACK_STATUS_NOOP
    ack = commands_pb2.ComputeAck(
        meta=new_meta(f"compute/{site}", cmd.meta.correlation_id), command_id=cmd.command_id,
        site_id=site, status=status, error=error, duration_ms=took_ms,
        workload_id=cmd.vm.workload_id)
    if res is not None and res.vm is not None:
        ack.vm_ref = res.vm.ref
        ack.addresses.extend(res.vm.addresses)
    return ack


class _Stopping(Exception):
    """The unit was told to stop while it outwaited an unreachable hypervisor."""


class ComputeUnit:
    def __init__(self, site: str, driver: Driver, broker: str, prefix: str = "",
                 capacity_interval_s: float = 10.0, retry_s: float = 20.0) -> None:
        self.site, self.driver, self.broker, self.prefix = site, driver, broker, prefix
        self.capacity_interval_s = capacity_interval_s
        self.retry_s = retry_s
        self._stop = asyncio.Event()
        self.applied = 0
        self.failed = 0
        self.connected = True

    async def run(self, stop: asyncio.Event) -> None:
        name = lambda base: T.SPECS[base].name(self.prefix)  # noqa: E731
        topic = T.compute_commands_topic(self.site, self.prefix)
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=self.broker, group_id=f"{self.prefix}tandem-compute-{self.site}",
            enable_auto_commit=False, auto_offset_reset="earliest",
            isolation_level="read_committed")
        producer = AIOKafkaProducer(bootstrap_servers=self.broker, acks="all", linger_ms=2)
        await consumer.start()
        await producer.start()
        log.info("compute unit %s (%s driver) consuming %s", self.site, self.driver.kind, topic)
        next_capacity = 0.0
        self._stop = stop
        try:
            while not stop.is_set():
                if time.monotonic() >= next_capacity:
                    next_capacity = time.monotonic() + self.capacity_interval_s
                    await self._publish_capacity(producer, name(T.TELEMETRY_BASE))
                try:
                    batch = await consumer.getmany(timeout_ms=200, max_records=100)
                    self._say_connected(True)
                except Exception as exc:  # the broker is away: say it once, retry
                    self._say_connected(False, exc)
                    await asyncio.sleep(1.0)
                    continue
                for tp, recs in batch.items():
                    done = None
                    for rec in recs:
                        if not await self._one(producer, rec, name(T.COMPUTE_ACKS_BASE),
                                               name(T.DEAD_LETTERS_BASE)):
                            break  # stopping while outwaiting the hypervisor: not acknowledged
                        done = rec
                    await producer.flush()  # acknowledgements on the broker before the offset
                    if done is not None:
                        await consumer.commit({tp: done.offset + 1})
        finally:
            await consumer.stop()
            await producer.stop()
            self.driver.close()

    def _say_connected(self, ok: bool, exc: Exception | None = None) -> None:
        if ok and not self.connected:
            log.warning("compute unit %s: broker reachable again", self.site)
        elif not ok and self.connected:
            log.error("compute unit %s: broker unreachable (%r); applying what it has", self.site,
                      exc)
        self.connected = ok

    async def _one(self, producer: AIOKafkaProducer, rec: Any, acks: str, dead: str) -> bool:
        """Apply and acknowledge one record; False when the unit is stopping before it could
        (the command stays unacknowledged and uncommitted: the next start applies it)."""
        try:
            cmd = decode(C, rec.value)
            check_meta(cmd)
        except InvalidEvent as bad:
            dl = build_dead_letter(topic=rec.topic, partition=rec.partition, offset=rec.offset,
                                   key=rec.key, payload=rec.value, reason=bad.reason,
                                   detail=bad.detail, consumer=f"compute-{self.site}")
            await producer.send(dead, dl.SerializeToString(), key=rec.topic.encode())
            return True
        started = time.perf_counter()
        res: Result | None = None
        error = ""
        if cmd.site_id and cmd.site_id != self.site:
            error = f"command for site {cmd.site_id!r} reached the unit of {self.site!r}"
        else:
            try:
                res = await self._apply_retrying(cmd)
                self.applied += 1
            except _Stopping:
                return False
            except DriverError as exc:
                error = str(exc)
            except Exception as exc:  # a driver bug: the command fails, the unit goes on
                log.exception("compute unit %s: %s failed", self.site, cmd.command_id)
                error = repr(exc)
        if error:
            self.failed += 1
            log.warning("compute unit %s: %s FAILED: %s", self.site, cmd.command_id, error)
        ack = ack_for(self.site, cmd, res, error, (time.perf_counter() - started) * 1000)
        await producer.send(acks, ack.SerializeToString(),
                            key=(cmd.vm.workload_id or self.site).encode())
        return True

    async def _apply_retrying(self, cmd: commands_pb2.ComputeCommand) -> Result:
        """`apply`, tried again while the hypervisor cannot be reached, up to `retry_s`."""
        deadline = time.monotonic() + self.retry_s
        pause = 0.25
        while True:
            try:
                return await asyncio.to_thread(apply, self.driver, cmd)
            except HypervisorUnreachable as exc:
                if self._stop.is_set():
                    log.warning("compute unit %s: stopping; %s left for the next start",
                                self.site, cmd.command_id)
                    raise _Stopping() from None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise HypervisorUnreachable(f"{exc} (tried for {self.retry_s:.0f} s)") \
                        from None
                log.warning("compute unit %s: %s: hypervisor unreachable, trying again for "
                            "%.0f s more", self.site, cmd.command_id, left)
                await asyncio.sleep(min(pause, left))
                pause = min(pause * 2, 2.0)

    async def _publish_capacity(self, producer: AIOKafkaProducer, topic: str) -> None:
        try:
            cap = await asyncio.to_thread(self.driver.capacity)
        except Exception as exc:  # the hypervisor is away: no sample this time
            log.warning("compute unit %s: capacity unavailable: %r", self.site, exc)
            return
        sample = telemetry_pb2.TelemetrySample(
            meta=new_meta(f"compute/{self.site}"), site=telemetry_pb2.SiteSample(
                site_id=self.site, free_vcpus=max(0.0, cap.vcpus),
                free_memory_gib=max(0.0, cap.memory_gib),
                free_storage_gib=max(0.0, cap.storage_gib)))
        try:
            await producer.send(topic, sample.SerializeToString(), key=self.site.encode())
        except Exception as exc:
            log.warning("compute unit %s: capacity not published: %r", self.site, exc)
