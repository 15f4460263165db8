"""Google's JSON error body, `{"error": {"code", "message", "status"}}`, as its APIs answer it."""

from __future__ import annotations

from typing import Any

# The canonical status name Google's APIs give each HTTP status they answer.
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def google_error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": _STATUS_NAMES.get(code, "UNKNOWN")}}


def injected_google_error(code: int) -> dict[str, Any]:
    """The body of an injected fault that names none."""
    return google_error(code, f"injected fault ({_STATUS_NAMES.get(code, 'UNKNOWN')})")
