"""The client side of the API for the command line and the benchmark: a channel to a server
(plaintext, TLS or mutual TLS), the bearer token as call metadata, and errors read back.

Why the token travels as metadata rather than gRPC call credentials: call credentials are
refused on a plaintext channel, and a server run without TLS (a laptop, a test) still takes
tokens; the header is the same either way (`authorization: Bearer TOKEN`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tandem.v1 import decision_pb2

from tandem.services.api.stubs import TandemStub

DEFAULT_API = "127.0.0.1:50051"


@dataclass(frozen=True)
class Target:
    """Where the API is and how to talk to it (flags, then TANDEM_API* variables)."""

    addr: str = DEFAULT_API
    token: str = ""
    ca: str = ""  # PEM of the CA the server's certificate is checked against: TLS
    cert: str = ""  # client certificate and key: mutual TLS
    key: str = ""
    metadata: tuple[tuple[str, str], ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        if self.token:
            object.__setattr__(self, "metadata", (("authorization", f"Bearer {self.token}"),))

    @classmethod
    def from_args(cls, args: Any) -> Target:
        env = os.environ.get
        return cls(args.api or env("TANDEM_API", DEFAULT_API),
                   args.token or env("TANDEM_API_TOKEN", ""),
                   args.ca or env("TANDEM_API_CA", ""), args.cert or env("TANDEM_API_CERT", ""),
                   args.key or env("TANDEM_API_KEY", ""))

    def channel(self) -> grpc.aio.Channel:
        """An asyncio channel: TLS when a CA is given (mutual with a client cert and key)."""
        if not self.ca:
            if self.cert or self.key:
                raise ValueError("--cert/--key (mutual TLS) need --ca")
            return grpc.aio.insecure_channel(self.addr)
        if bool(self.cert) != bool(self.key):
            raise ValueError("--cert and --key go together")
        creds = grpc.ssl_channel_credentials(
            root_certificates=Path(self.ca).read_bytes(),
            private_key=Path(self.key).read_bytes() if self.key else None,
            certificate_chain=Path(self.cert).read_bytes() if self.cert else None)
        return grpc.aio.secure_channel(self.addr, creds)

    def stub(self, channel: grpc.aio.Channel) -> TandemStub:
        return TandemStub(channel)


def details_of(err: grpc.aio.AioRpcError) -> list[Message]:
    """The google.rpc.Status details of a failed call (BadRequest, ErrorInfo, Decision)."""
    st = rpc_status.from_call(err)
    out: list[Message] = []
    for a in (st.details if st is not None else []):
        for cls in (error_details_pb2.BadRequest, error_details_pb2.ErrorInfo,
                    decision_pb2.Decision):
            if a.Is(cls.DESCRIPTOR):
                msg = cls()
                a.Unpack(msg)
                out.append(msg)
    return out


async def until_serving(channel: grpc.aio.Channel, timeout: float = 60.0) -> None:
    """Return once the server's health (overall status) is SERVING: the health Watch streams
    each change, so nothing polls. DEADLINE_EXCEEDED after `timeout` seconds."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(channel)
    async for reply in health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=timeout):
        if reply.status == health_pb2.HealthCheckResponse.SERVING:
            return
