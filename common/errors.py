"""The one exception tree; common.http maps each class to its HTTP status and problem type."""

from __future__ import annotations


class PlanterError(Exception):
    """Base of every error that is answered to a client rather than propagated."""

    status = 500
    title = "Internal Server Error"
    type_slug = "internal"

    def __init__(
        self, detail: str = "", *, errors: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.headers = headers or {}


class BadRequest(PlanterError):
    status, title, type_slug = 400, "Bad Request", "bad-request"


class Unauthorized(PlanterError):
    status, title, type_slug = 401, "Unauthorized", "unauthorized"


class NotFound(PlanterError):
    status, title, type_slug = 404, "Not Found", "not-found"


class MethodNotAllowed(PlanterError):
    status, title, type_slug = 405, "Method Not Allowed", "method-not-allowed"


class Conflict(PlanterError):
    status, title, type_slug = 409, "Conflict", "conflict"


class PayloadTooLarge(PlanterError):
    status, title, type_slug = 413, "Payload Too Large", "payload-too-large"


class UnsupportedMediaType(PlanterError):
    status, title, type_slug = 415, "Unsupported Media Type", "unsupported-media-type"


class ValidationFailed(PlanterError):
    status, title, type_slug = 422, "Unprocessable Content", "validation"


class UnknownTimeZone(ValidationFailed):
    """A time zone name that is not an IANA zone (the ``tz`` of the dashboard's routes)."""

    def __init__(self, zone: str):
        super().__init__("the query has invalid parameters", errors={"tz": f"unknown time zone {zone[:64]!r}"})


class IdempotencyKeyReused(ValidationFailed):
    """An idempotency key sent again with another request body (the ``Idempotency-Key`` header)."""

    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was used with a different body",
            errors={"Idempotency-Key": "reused with another body"},
        )


class QuotaExceeded(PlanterError):
    status, title, type_slug = 429, "Too Many Requests", "quota-exceeded"


class RetryLater(PlanterError):
    """The request is fine but cannot be served yet (a step in backoff or held by another run)."""

    status, title, type_slug = 503, "Service Unavailable", "retry-later"

    def __init__(self, detail: str, *, retry_after: int = 1):
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


class DatabaseUnavailable(PlanterError):
    status, title, type_slug = 503, "Service Unavailable", "database-unavailable"

    def __init__(self, detail: str = "the database is unreachable"):
        super().__init__(detail, headers={"Retry-After": "5"})


class IdentityProviderUnavailable(PlanterError):
    """The identity provider's signing keys could not be fetched, so no token can be checked yet:
    the request may be fine and the database up (its own type, so clients and alerts can tell)."""

    status, title, type_slug = 503, "Service Unavailable", "identity-provider-unavailable"

    def __init__(self, detail: str = "the identity provider's keys could not be fetched"):
        super().__init__(detail, headers={"Retry-After": "5"})
