"""Domain errors of the API, raised by the servicers and the view, mapped to gRPC status codes
in one place (`tandem.services.api.interceptor`).

Why exceptions of our own rather than `context.abort` in each servicer: one mapping keeps the
codes OSS systems act on consistent across calls, and the servicers stay free of grpc.
"""

from __future__ import annotations

from tandem.v1 import decision_pb2


class ApiError(Exception):
    """Base class; `str(self)` is the status message."""


class BadRequest(ApiError):
    """INVALID_ARGUMENT: the offending fields, as (field path, what is wrong)."""

    def __init__(self, violations: list[tuple[str, str]]) -> None:
        self.violations = violations
        super().__init__("; ".join(why if f and why.startswith(f) else f"{f or 'request'}: {why}"
                                   for f, why in violations))


class Infeasible(ApiError):
    """FAILED_PRECONDITION: the engine rejected the order; the decision says why."""

    def __init__(self, decision: decision_pb2.Decision) -> None:
        self.decision = decision
        r = decision.rejection
        super().__init__(f"rejected ({r.constraint}): {r.detail}" if r.constraint
                         else decision.explanation.summary or "rejected")


class NotFound(ApiError):
    """NOT_FOUND."""


class AlreadyExists(ApiError):
    """ALREADY_EXISTS: an idempotency key used before for a different order."""


class Unavailable(ApiError):
    """UNAVAILABLE: Kafka cannot be reached, or the decider log is not read yet."""


class DeadlineExceeded(ApiError):
    """DEADLINE_EXCEEDED: no answer within the call's deadline (the order may still be
    decided: repeating the call with the same idempotency key returns that decision)."""


class Unimplemented(ApiError):
    """UNIMPLEMENTED: an option not built yet."""


class PermissionDenied(ApiError):
    """PERMISSION_DENIED: the caller's token does not allow this (another tenant named, the
    read-only NOC role changing something). `reason` and `field` travel as ErrorInfo."""

    def __init__(self, message: str, reason: str, field: str = "") -> None:
        self.reason, self.field = reason, field
        super().__init__(message)


class Unauthenticated(ApiError):
    """UNAUTHENTICATED: no bearer token, or one the server does not know."""


class ResourceExhausted(ApiError):
    """RESOURCE_EXHAUSTED: a server limit reached (WatchEvents streams open)."""
