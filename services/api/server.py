"""The gRPC server: `tandem.v1.Tandem` with gRPC health checking and server reflection.

`create_server(addr, broker, prefix)` binds (port 0 picks a free port, for tests) and returns
the server and its port; `await server.start()` starts reading the decider log and serving.
The servicers are thin — convert, call the core (the view's fold, the orders), convert — and
raise domain errors that `ErrorInterceptor` maps to status codes. Health: the overall status
("") and "tandem.v1.Tandem" are SERVING while the view's fold is current and Kafka answers,
NOT_SERVING otherwise.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from tandem.events import new_meta
from tandem.v1 import api_pb2, decision_pb2, workload_pb2

from tandem.services.api import convert
from tandem.services.api.approvals import Policy, Webhook
from tandem.services.api.auth import (CURRENT, Tokens, may_approve, may_change, may_maintain,
                                      may_read)
from tandem.services.api.maintenance import Maintenance
from tandem.services.api.errors import BadRequest, NotFound, ResourceExhausted
from tandem.services.api.interceptor import ErrorInterceptor
from tandem.services.api.orders import STARTUP_WAIT_S, Orders
from tandem.services.api.status import order_state
from tandem.services.api.stubs import SERVICE_NAME, add_servicer
from tandem.services.api.view import SOURCE, KAFKA_TIMEOUT_S, DeciderView
from tandem.services.api.watch import watch

log = logging.getLogger(__name__)
MARGIN_S = 0.2  # answered this long before the caller's deadline, so the answer (not the
# transport's own DEADLINE_EXCEEDED) reaches it, naming the request it sent
MAX_MESSAGE = 512 * 1024
MAX_STREAMS = 64  # WatchEvents streams open at once (each holds a Kafka consumer)


def _timeout(context: grpc.aio.ServicerContext) -> float | None:
    left = context.time_remaining()
    return None if left is None else max(0.0, left - MARGIN_S)


class TandemServicer:
    """One coroutine per RPC of `tandem.v1.Tandem`."""

    def __init__(self, view: DeciderView, orders: Orders, maintenance: Maintenance,
                 policy: Policy | None = None) -> None:
        self.view, self.orders, self.maintenance = view, orders, maintenance
        self.policy = policy or Policy()
        self.streams, self.max_streams = 0, MAX_STREAMS

    async def _ready(self, context: grpc.aio.ServicerContext) -> None:
        t = _timeout(context)
        await self.view.wait_serving(STARTUP_WAIT_S if t is None else min(t, STARTUP_WAIT_S))

    async def PlaceAndConnect(self, call: api_pb2.PlaceAndConnectRequest,
                              context: grpc.aio.ServicerContext) -> api_pb2.PlaceAndConnectResponse:
        if call.HasField("workload"):
            call.workload.tenant = may_change(CURRENT.get(), call.workload.tenant,
                                              "workload.tenant")
            self.policy.apply(call.workload)
        d, rid, end = await self.orders.place(call, _timeout(context))
        phase = (end.phase if end is not None else decision_pb2.WORKLOAD_PHASE_HELD
                 if d.HasField("hold") else decision_pb2.WORKLOAD_PHASE_DECIDED)
        reply = api_pb2.PlaceAndConnectResponse(
            decision=d, request_id=rid, log_position=self.view.position,
            order_state=order_state(phase, d.kind))  # type: ignore[arg-type]
        if end is not None:
            reply.status.CopyFrom(end)
        return reply

    async def WhatIf(self, call: api_pb2.WhatIfRequest,
                     context: grpc.aio.ServicerContext) -> api_pb2.WhatIfResponse:
        if call.HasField("workload"):
            call.workload.tenant = may_read(CURRENT.get(), call.workload.tenant,
                                            "workload.tenant")
        convert.check_place(call, need_key=False)
        await self._ready(context)
        rid = f"whatif-{uuid.uuid4()}"
        event = workload_pb2.RequestEvent(meta=new_meta(SOURCE, correlation_id=rid),
                                          request_id=rid, place=call.workload)
        return api_pb2.WhatIfResponse(decision=self.view.what_if(event, time.time()),
                                      log_position=self.view.position)

    async def Release(self, call: api_pb2.ReleaseWorkloadRequest,
                      context: grpc.aio.ServicerContext) -> api_pb2.ReleaseWorkloadResponse:
        call.release.tenant = may_change(CURRENT.get(), call.release.tenant, "release.tenant")
        d, rid = await self.orders.release(call, _timeout(context))
        return api_pb2.ReleaseWorkloadResponse(decision=d, request_id=rid,
                                               log_position=self.view.position)

    async def GetWorkload(self, call: api_pb2.GetWorkloadRequest,
                          context: grpc.aio.ServicerContext) -> api_pb2.GetWorkloadResponse:
        call.tenant = may_read(CURRENT.get(), call.tenant)
        convert.require_id(call.workload_id, "workload_id")
        await self._ready(context)
        d = self.view.latest.get(call.workload_id)
        if d is None or (call.tenant and d.tenant != call.tenant):
            await self.view.sync(KAFKA_TIMEOUT_S)  # perhaps just decided: read up to the end
            d = self.view.latest.get(call.workload_id)
        if d is None or (call.tenant and d.tenant != call.tenant):
            raise NotFound(f"no workload {call.workload_id!r}"
                           + (f" of tenant {call.tenant!r}" if call.tenant else ""))
        held = self.view.admitted().get(call.workload_id)
        return api_pb2.GetWorkloadResponse(
            workload=convert.workload_of(d, held is not None and held.holds,
                                         self.view.statuses.latest(call.workload_id)),
            log_position=self.view.position)

    async def ListWorkloads(self, call: api_pb2.ListWorkloadsRequest,
                            context: grpc.aio.ServicerContext) -> api_pb2.ListWorkloadsResponse:
        call.tenant = may_read(CURRENT.get(), call.tenant)
        await self._ready(context)
        items, token = convert.page(call, self.view.latest,
                                    convert.admitted_ids(self.view.admitted()),
                                    self.view.statuses.latest)
        return api_pb2.ListWorkloadsResponse(workloads=items, next_page_token=token,
                                             log_position=self.view.position)

    async def GetTopology(self, call: api_pb2.GetTopologyRequest,
                          context: grpc.aio.ServicerContext) -> api_pb2.GetTopologyResponse:
        await self._ready(context)
        sites, links = convert.topology_view(self.view.decider.topology, self.view.decider.state)
        return api_pb2.GetTopologyResponse(sites=sites, links=links,
                                           log_position=self.view.position)


    async def WatchEvents(self, call: api_pb2.WatchEventsRequest,
                          context: grpc.aio.ServicerContext) -> AsyncIterator[api_pb2.WatchEvent]:
        tenant = may_read(CURRENT.get(), call.tenant)
        await self._ready(context)
        sites = self.view.decider.topology.sites
        if call.site_id and call.site_id not in sites:
            raise BadRequest([("site_id", f"{call.site_id!r}: no such site")])
        if self.streams >= self.max_streams:  # each stream is a Kafka consumer of its own
            raise ResourceExhausted(f"{self.streams} WatchEvents streams open (at most "
                                    f"{self.max_streams} per server): close one or retry later")

        async def positioned() -> None:
            await context.send_initial_metadata(())

        self.streams += 1
        try:
            async for ev in watch(self.view.broker, self.view.prefix, call, tenant,
                                  self.view.lookup(), positioned):
                yield ev
        finally:
            self.streams -= 1

    async def SetLinkAdminState(self, call: api_pb2.SetLinkAdminStateRequest,
                                context: grpc.aio.ServicerContext
                                ) -> api_pb2.SetLinkAdminStateResponse:
        may_maintain(CURRENT.get())
        decisions, link = await self.maintenance.set_link(call, _timeout(context))
        return api_pb2.SetLinkAdminStateResponse(decisions=decisions, link=link,
                                                 log_position=self.view.position)


    async def DrainSite(self, call: api_pb2.DrainSiteRequest,
                        context: grpc.aio.ServicerContext) -> api_pb2.DrainSiteResponse:
        may_maintain(CURRENT.get())
        decisions, site = await self.maintenance.drain_site(call, _timeout(context))
        return api_pb2.DrainSiteResponse(decisions=decisions, site=site,
                                         log_position=self.view.position)


    async def Approve(self, call: api_pb2.ApprovalCall,
                      context: grpc.aio.ServicerContext) -> api_pb2.ApprovalResponse:
        return await self._verdict(call, True, context)

    async def Reject(self, call: api_pb2.ApprovalCall,
                     context: grpc.aio.ServicerContext) -> api_pb2.ApprovalResponse:
        return await self._verdict(call, False, context)

    async def _verdict(self, call: api_pb2.ApprovalCall, approve: bool,
                       context: grpc.aio.ServicerContext) -> api_pb2.ApprovalResponse:
        by = may_approve(CURRENT.get())
        d, rid = await self.orders.verdict(call, approve, by, _timeout(context))
        return api_pb2.ApprovalResponse(decision=d, request_id=rid,
                                        log_position=self.view.position)


class ApiServer:
    """The gRPC server with the view and the order sender it serves from."""

    def __init__(self, server: grpc.aio.Server, view: DeciderView, orders: Orders,
                 health_servicer: health.aio.HealthServicer, servicer: TandemServicer,
                 webhook: Webhook | None = None) -> None:
        self.grpc, self.view, self.orders, self.health = server, view, orders, health_servicer
        self.servicer, self.webhook = servicer, webhook

    async def start(self) -> None:
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.view.listeners.append(self._serving)
        await self.grpc.start()
        await self.view.start()
        if self.webhook is not None:
            self.webhook.start()

    async def _serving(self, up: bool) -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if up
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        log.info("api: %s", "serving" if up else f"not serving ({self.view.error or 'catching up'})")
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def stop(self, grace: float | None = 1.0) -> None:
        await self.grpc.stop(grace)
        if self.webhook is not None:
            await self.webhook.stop()
        await self.orders.close()
        await self.view.stop()

    async def wait_for_termination(self) -> None:
        await self.grpc.wait_for_termination()


@dataclass(frozen=True)
class Tls:
    """The server's certificate chain and key (PEM), and with `client_ca` mutual TLS: every
    client must present a certificate signed by it."""

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None

    @classmethod
    def load(cls, cert: str, key: str, client_ca: str | None = None) -> Tls:
        try:
            return cls(Path(cert).read_bytes(), Path(key).read_bytes(),
                       Path(client_ca).read_bytes() if client_ca else None)
        except OSError as exc:
            raise OSError(f"cannot read {exc.filename}: {exc.strerror}") from None

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials([(self.private_key, self.cert_chain)],
                                           root_certificates=self.client_ca,
                                           require_client_auth=self.client_ca is not None)


async def create_server(addr: str, broker: str, prefix: str = "", tls: Tls | None = None,
                        tokens: Tokens | None = None, policy: Policy | None = None,
                        webhook: Webhook | None = None) -> tuple[ApiServer, int]:
    """A server bound to `addr` ("127.0.0.1:0" picks a free port), not started yet; with the
    port it is bound to. `tls`: serve TLS (mutual with a client CA); `tokens`: require a bearer
    token on every call of tandem.v1.Tandem and isolate tenants (`auth`); without them the
    server runs open, as the log says. `policy`: the tenants whose orders need an approval;
    `webhook`: post the approval events (`approvals`). Raises OSError when the address cannot
    be bound."""
    if tokens is None:
        log.warning("api: no token file: every caller may read and change every tenant's "
                    "workloads (start with --tokens FILE to isolate tenants)")
    else:
        log.info("api: %d bearer token(s): tenants isolated, the NOC role read-only", len(tokens))
        if tls is None:
            log.warning("api: bearer tokens over plaintext: they can be read on the wire "
                        "(serve TLS with --tls-cert/--tls-key)")
    server = grpc.aio.server(interceptors=[ErrorInterceptor(tokens)], options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE)])
    view = DeciderView(broker, prefix)
    orders = Orders(view, broker, prefix)
    servicer = TandemServicer(view, orders, Maintenance(view, orders, prefix), policy)
    add_servicer(server, servicer)
    hs = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(hs, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME), server)
    try:
        port = (server.add_insecure_port(addr) if tls is None
                else server.add_secure_port(addr, tls.credentials()))
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {addr}: {exc}") from None
    if port == 0:
        raise OSError(f"cannot listen on {addr}")
    return ApiServer(server, view, orders, hs, servicer, webhook), port
