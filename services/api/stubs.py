"""Server handlers and a client stub for `tandem.v1.Tandem`, built from the service descriptor.

Why not protoc's `*_pb2_grpc.py`: the descriptor in `api_pb2` already says every method and its
message types, so building the handlers from it needs no second generated artefact (and no
change to how `make protos` runs protoc); the generic handler and the stub are a few lines.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass

from tandem.v1 import api_pb2

SERVICE: ServiceDescriptor = api_pb2.DESCRIPTOR.services_by_name["Tandem"]
SERVICE_NAME = SERVICE.full_name  # "tandem.v1.Tandem"


def method_types(name: str) -> tuple[Any, Any]:
    """(request class, response class) of one method."""
    m = SERVICE.methods_by_name[name]
    return GetMessageClass(m.input_type), GetMessageClass(m.output_type)


def add_servicer(server: grpc.aio.Server, servicer: Any) -> None:
    """Register `servicer`'s methods (one per RPC, same names: coroutines, or async generators
    for server-streaming RPCs) on `server`."""
    handlers = {}
    for m in SERVICE.methods:
        req, resp = method_types(m.name)
        make = (grpc.unary_stream_rpc_method_handler if m.server_streaming
                else grpc.unary_unary_rpc_method_handler)
        handlers[m.name] = make(getattr(servicer, m.name), request_deserializer=req.FromString,
                                response_serializer=resp.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME,
                                                                         handlers),))


class TandemStub:
    """Client: one callable per RPC (`stub.WhatIf(request, timeout=...)`; a streaming RPC
    returns an iterator of its messages), on a sync or an asyncio channel alike."""

    def __init__(self, channel: grpc.Channel | grpc.aio.Channel) -> None:
        for m in SERVICE.methods:
            req, resp = method_types(m.name)
            make = channel.unary_stream if m.server_streaming else channel.unary_unary
            setattr(self, m.name, make(
                f"/{SERVICE_NAME}/{m.name}", request_serializer=req.SerializeToString,
                response_deserializer=resp.FromString))

    def __getattr__(self, name: str) -> Any:  # for type checkers: methods are set above
        raise AttributeError(name)
