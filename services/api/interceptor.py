"""Domain errors → gRPC status codes, in one server interceptor.

Why one place: OSS systems act on the code (retry on UNAVAILABLE, fix the named field on
INVALID_ARGUMENT, give up on FAILED_PRECONDITION), so every call must map the same error to the
same code with the same details. The details travel as `google.rpc.Status` in the
`grpc-status-details-bin` trailer (grpcio-status): `BadRequest` with one field violation per
offending field, `ErrorInfo` naming a rejection's constraint, and the rejected `Decision`
itself (with its explanation).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from aiokafka.errors import KafkaError
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from tandem.validation import PROCESSING_ERROR, InvalidEvent

from tandem.services.api import convert
from tandem.services.api.stubs import SERVICE_NAME
from tandem.services.api.auth import CURRENT, Tokens
from tandem.services.api.errors import (AlreadyExists, ApiError, BadRequest, DeadlineExceeded,
                                        Infeasible, NotFound, PermissionDenied,
                                        ResourceExhausted, Unauthenticated, Unavailable,
                                        Unimplemented)

log = logging.getLogger(__name__)
DOMAIN = "tandem.v1"

_CODES: dict[type[ApiError], int] = {
    BadRequest: code_pb2.INVALID_ARGUMENT,
    Infeasible: code_pb2.FAILED_PRECONDITION,
    NotFound: code_pb2.NOT_FOUND,
    AlreadyExists: code_pb2.ALREADY_EXISTS,
    Unavailable: code_pb2.UNAVAILABLE,
    DeadlineExceeded: code_pb2.DEADLINE_EXCEEDED,
    Unimplemented: code_pb2.UNIMPLEMENTED,
    PermissionDenied: code_pb2.PERMISSION_DENIED,
    Unauthenticated: code_pb2.UNAUTHENTICATED,
    ResourceExhausted: code_pb2.RESOURCE_EXHAUSTED,
}


def _pack(msg: Any) -> any_pb2.Any:
    a = any_pb2.Any()
    a.Pack(msg)
    return a


def status_of(exc: BaseException) -> status_pb2.Status:
    """The rich status an exception is answered with (pure: tested without a server)."""
    if isinstance(exc, InvalidEvent):
        if exc.reason == PROCESSING_ERROR:
            return status_pb2.Status(code=code_pb2.INTERNAL, message=str(exc))
        field, detail = convert.field_of(exc.detail)
        exc = BadRequest([(field, f"{detail} ({exc.reason})")])
    if isinstance(exc, KafkaError):
        exc = Unavailable(f"Kafka: {exc!r}")
    if not isinstance(exc, ApiError):
        return status_pb2.Status(code=code_pb2.INTERNAL, message=f"internal error: {exc!r}")
    st = status_pb2.Status(code=_CODES.get(type(exc), code_pb2.UNKNOWN), message=str(exc))
    if isinstance(exc, BadRequest):
        st.details.append(_pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=f, description=why)
            for f, why in exc.violations])))
    elif isinstance(exc, Infeasible):
        r = exc.decision.rejection
        st.details.append(_pack(error_details_pb2.ErrorInfo(
            reason=f"REJECTED_{(r.constraint or 'unknown').upper()}", domain=DOMAIN,
            metadata={"workload_id": exc.decision.workload_id,
                      "decision_id": exc.decision.meta.event_id,
                      "constraint": r.constraint})))
        st.details.append(_pack(exc.decision))
    elif isinstance(exc, PermissionDenied):
        st.details.append(_pack(error_details_pb2.ErrorInfo(
            reason=exc.reason, domain=DOMAIN, metadata={"field": exc.field} if exc.field else {})))
    return st


Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


def _authenticate(tokens: Tokens | None, context: grpc.aio.ServicerContext) -> None:
    """Set the caller's principal for the servicers (`auth.CURRENT`); without a token table
    every caller is anyone (unrestricted)."""
    if tokens is not None:
        CURRENT.set(tokens.authenticate(context.invocation_metadata()))


def _failed(exc: Exception, what: str) -> Any:
    """The status a call ends with: a domain error's, or — a bug, logged whole — INTERNAL;
    an abort already under way is passed on."""
    if isinstance(exc, grpc.aio.AbortError):
        raise exc
    if not isinstance(exc, (ApiError, InvalidEvent, KafkaError)):
        log.exception("api: %s failed", what)
    return rpc_status.to_status(status_of(exc))


def _guard(inner: Handler, tokens: Tokens | None) -> Handler:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            _authenticate(tokens, context)
            return await inner(request, context)
        except Exception as exc:
            st = _failed(exc, "call")
        await context.abort_with_status(st)
    return call


StreamHandler = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]


def _guard_stream(inner: StreamHandler, tokens: Tokens | None) -> StreamHandler:
    """`_guard` for a server-streaming handler: an error before or between messages ends the
    stream with its status."""
    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            _authenticate(tokens, context)
            async for item in inner(request, context):
                yield item
            return
        except Exception as exc:
            st = _failed(exc, "stream")
        await context.abort_with_status(st)
    return call


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every handler of tandem.v1.Tandem: authenticates the caller (with a token table)
    and turns the exceptions above into statuses. Health and reflection are left open: they
    say nothing of any tenant, and load balancers probe health without credentials."""

    def __init__(self, tokens: Tokens | None = None) -> None:
        self.tokens = tokens

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails],
                                                             Awaitable[grpc.RpcMethodHandler]],
                                handler_call_details: grpc.HandlerCallDetails
                                ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is not None and handler.unary_stream is not None \
                and handler_call_details.method.startswith(f"/{SERVICE_NAME}/"):
            return grpc.unary_stream_rpc_method_handler(
                _guard_stream(handler.unary_stream, self.tokens),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        if handler is None or handler.unary_unary is None \
                or not handler_call_details.method.startswith(f"/{SERVICE_NAME}/"):
            return handler  # health and reflection: open, and map their own errors
        return grpc.unary_unary_rpc_method_handler(
            _guard(handler.unary_unary, self.tokens),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)
