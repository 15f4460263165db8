"""A small JSON client for the Google Cloud REST APIs the live provider calls.

Each API has its own host in production; locally one stand-in serves every path, so ``base_url``
(GCP_API_URL) replaces all of them. ``token`` gives a bearer token (Application Default Credentials
in production, None against the stand-in); it is called per request, so it may refresh.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

HOSTS = {
    "resourcemanager": "https://cloudresourcemanager.googleapis.com",
    "billing": "https://cloudbilling.googleapis.com",
    "serviceusage": "https://serviceusage.googleapis.com",
    "cloudbuild": "https://cloudbuild.googleapis.com",
    "run": "https://run.googleapis.com",
}


class GcpError(Exception):
    """Google answered with an error (``status`` is the HTTP status; 0: no answer at all)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class GcpClient:
    base_url: str  # "" → Google's own host for each API
    token: Callable[[], str | None]
    timeout: float = 30.0

    def url(self, api: str, path: str) -> str:
        return f"{(self.base_url or HOSTS[api]).rstrip('/')}/{path.lstrip('/')}"

    def call(self, method: str, api: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        headers = {"Accept": "application/json"}
        token = self.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            reply = httpx.request(
                method, self.url(api, path), json=body, params=params, headers=headers, timeout=self.timeout
            )
        except httpx.HTTPError as error:
            raise GcpError(0, f"{api} did not answer: {error.__class__.__name__}: {error}") from error
        if reply.status_code >= 400:
            raise GcpError(reply.status_code, _message(api, reply), _retry_after(reply))
        return reply.json() if reply.content else {}

    def wait_operation(
        self, api: str, version: str, op: dict[str, Any], stop: threading.Event, limit: float = 60
    ) -> Any:
        """The response of a long-running operation, polled until done (Resource Manager, Service Usage)."""
        deadline = time.monotonic() + limit
        pause = 0.5
        while not op.get("done"):
            if time.monotonic() > deadline or stop.wait(pause):
                raise GcpError(0, f"{api} operation {op.get('name')} did not finish in {limit:.0f} s")
            op = self.call("GET", api, f"{version}/{op['name']}")
            pause = min(pause * 2, 5.0)
        if "error" in op:
            error = op["error"]
            raise GcpError(_http_of(int(error.get("code", 2))), f"{api} operation failed: {error.get('message')}")
        return op.get("response") or {}


def _message(api: str, reply: httpx.Response) -> str:
    try:
        error = reply.json().get("error") or {}
        detail = error.get("message") or reply.text[:300]
    except ValueError:
        detail = reply.text[:300]
    return f"{api} answered {reply.status_code}: {detail}"


def _retry_after(reply: httpx.Response) -> float | None:
    raw = reply.headers.get("retry-after")
    try:
        return float(raw) if raw else (60.0 if reply.status_code == 429 else None)
    except ValueError:
        return 60.0


def _http_of(rpc_code: int) -> int:
    """google.rpc.Code of a failed operation → the HTTP status it maps to (for classification)."""
    return {3: 400, 5: 404, 6: 409, 7: 403, 8: 429, 14: 503, 16: 401}.get(rpc_code, 500)


def adc_token() -> Callable[[], str | None]:
    """Application Default Credentials (the function's service account); google-auth is loaded on first use."""
    holder: dict[str, Any] = {}
    lock = threading.Lock()

    def token() -> str | None:
        with lock:
            if "creds" not in holder:
                import google.auth
                import google.auth.transport.requests

                holder["creds"], _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
                holder["request"] = google.auth.transport.requests.Request()
            creds = holder["creds"]
            if not creds.valid:
                creds.refresh(holder["request"])
            return str(creds.token)

    return token
