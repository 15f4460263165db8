"""A small HTTP client for Planter's API, standard library only (the CLI adds no dependency)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"


class ApiError(Exception):
    """An answer other than 2xx: its status and the problem+json detail (RFC 9457)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        detail = problem.get("detail") or problem.get("title") or "request failed"
        errors = problem.get("errors")
        if isinstance(errors, dict) and errors:
            detail += " (" + "; ".join(f"{k}: {v}" for k, v in errors.items()) + ")"
        super().__init__(f"{status}: {detail}")


class Unreachable(Exception):
    """The server could not be reached at all."""


@dataclass(frozen=True)
class Client:
    base_url: str
    token: str | None
    timeout: float = 30.0

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", **(extra or {})}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def open(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
        """The raw response (the caller reads and closes it); ApiError / Unreachable otherwise."""
        request = urllib.request.Request(  # noqa: S310 (the URL is the user's own PLANTER_URL)
            self.base_url.rstrip("/") + path, data=body, method=method, headers=self.headers(headers)
        )
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                problem = json.loads(raw) if raw else {}
            except ValueError:
                problem = {"detail": raw.decode("utf-8", "replace")[:200]}
            raise ApiError(error.code, problem if isinstance(problem, dict) else {}) from None
        except (urllib.error.URLError, OSError) as error:
            raise Unreachable(f"cannot reach {self.base_url}: {getattr(error, 'reason', error)}") from None

    def call(self, method: str, path: str, payload: Any = None, headers: dict[str, str] | None = None) -> Any:
        """A JSON request and its JSON answer (None for an empty body)."""
        body = None
        extra = dict(headers or {})
        if payload is not None:
            body = json.dumps(payload).encode()
            extra["Content-Type"] = "application/json"
        with self.open(method, path, body, extra) as response:
            raw = response.read()
        return json.loads(raw) if raw else None
