"""A small GitHub REST client over httpx, with GitHub's errors sorted into what the pipeline does.

- rate limits (403/429 with `retry-after`, or `x-ratelimit-remaining: 0` with `x-ratelimit-reset`)
  → ``RateLimited``: the step is delivered again at the provider's time, never a sleep here;
- 5xx, timeouts, connection errors → ``Unavailable``: the step's ordinary backoff;
- anything else non-2xx → ``GitHubRefused`` with GitHub's status, message and errors, for the
  step to decide (a 404 may mean "create it", a 422 "the name is taken").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

API_VERSION = "2022-11-28"
DEFAULT_TIMEOUT = 20.0


class GitHubError(Exception):
    """Base of the client's errors."""


class RateLimited(GitHubError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(GitHubError):
    """GitHub is down or slow for now; worth retrying with backoff."""


class GitHubRefused(GitHubError):
    def __init__(self, status: int, message: str, errors: list[Any] | None = None) -> None:
        super().__init__(f"GitHub answered {status}: {message}")
        self.status = status
        self.message = message
        self.errors = errors or []

    def mentions(self, text: str) -> bool:
        blob = " ".join([self.message, *(str(e.get("message", "")) for e in self.errors if isinstance(e, dict))])
        return text.lower() in blob.lower()


@dataclass(frozen=True)
class Call:
    """One request, for the timing table (docs/DESIGN.md) and the logs."""

    method: str
    route: str
    status: int
    seconds: float


def rate_limit_delay(response: httpx.Response, now: float) -> float | None:
    """Seconds GitHub asks us to wait, or None when the answer is not a rate limit."""
    if response.status_code not in (403, 429):
        return None
    retry_after = response.headers.get("retry-after")
    if retry_after is not None:
        try:
            return max(1.0, float(retry_after))
        except ValueError:
            return 60.0
    if response.headers.get("x-ratelimit-remaining") == "0":
        reset = float(response.headers.get("x-ratelimit-reset") or now + 60)
        return max(1.0, reset - now)
    if response.status_code == 429 or "rate limit" in response.text.lower():
        return 60.0  # GitHub's advice for a secondary limit without a header: wait at least a minute
    return None


def new_http(base_url: str, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """An HTTP client for GitHub. Building one costs ~0.1 s (its TLS context): share it (it is thread-safe)."""
    return httpx.Client(
        base_url=base_url.rstrip("/"),
        timeout=DEFAULT_TIMEOUT,
        transport=transport,
        headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION},
    )


@dataclass
class GitHubClient:
    """REST calls with a token from ``token()`` (a static token, or an App installation's)."""

    base_url: str
    token: Callable[[], str]
    transport: httpx.BaseTransport | None = None
    clock: Callable[[], float] = time.time
    calls: list[Call] = field(default_factory=list)
    _http: httpx.Client | None = None  # shared by the clients of one access object (keep-alive, one TLS setup)

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = new_http(self.base_url, self.transport)
        return self._http

    def request(
        self, method: str, route: str, *, json: Any = None, params: dict[str, Any] | None = None, **path: Any
    ) -> Any:
        """``route`` is GitHub's path template ("/repos/{owner}/{repo}"), filled from ``path``."""
        url = route.format(**path)
        started = time.monotonic()
        try:
            response = self._client().request(
                method, url, json=json, params=params, headers={"Authorization": f"Bearer {self.token()}"}
            )
        except httpx.TimeoutException as exc:
            raise Unavailable(f"GitHub did not answer {method} {route} in time") from exc
        except httpx.TransportError as exc:
            raise Unavailable(f"GitHub could not be reached for {method} {route}: {exc}") from exc
        finally:
            elapsed = time.monotonic() - started
        self.calls.append(Call(method, route, response.status_code, elapsed))
        delay = rate_limit_delay(response, self.clock())
        if delay is not None:
            raise RateLimited(f"GitHub rate limit on {method} {route}; retry in {delay:.0f} s", delay)
        if response.status_code >= 500:
            raise Unavailable(f"GitHub answered {response.status_code} to {method} {route}")
        if response.status_code >= 400:
            body = _json_or_empty(response)
            raise GitHubRefused(
                response.status_code, str(body.get("message") or response.reason_phrase), body.get("errors")
            )
        return response.json() if response.content else None

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
