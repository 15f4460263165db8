"""The base of the stand-ins for Google's JSON APIs (Google Cloud, Gemini).

A threaded HTTP server on its own port; JSON in and out; Google's error body; the stand-ins' own
endpoints (`GET /healthz`; `POST /_faults` → 201, `DELETE /_faults` → 204, docs/API.md), which
faults never touch; then an injected fault, if one matches, or the subclass's ``route``. Every
routed exchange is logged in ``exchanges`` so that a test can check its shapes.
"""

from __future__ import annotations

import http.server
import json
import threading
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from dev.standins.faults import Faults
from dev.standins.google_errors import google_error, injected_google_error
from dev.standins.serving import QuietThreadingServer, ServedOnThread


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # a JSON value, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)


class Exchange(NamedTuple):
    method: str
    path: str
    body: Any
    status: int
    answer: Any


class JsonApiStandIn(ServedOnThread):
    """Subclasses answer their API in ``route``; ``control`` may serve more endpoints of their own."""

    def __init__(self, port: int, host: str, thread_name: str) -> None:
        self.lock = threading.Lock()  # guards what the handler threads record
        self.faults = Faults(injected_google_error)
        self.exchanges: list[Exchange] = []
        server = QuietThreadingServer((host, port), _handler_for(self))
        server.daemon_threads = True
        super().__init__(server, thread_name)

    def route(self, request: Request) -> tuple[int, Any]:
        raise NotImplementedError

    def add_fault(self, spec: dict[str, Any]) -> None:
        self.faults.add(spec)

    def clear_faults(self) -> None:
        self.faults.clear()

    def control(self, request: Request) -> Reply | None:
        """The stand-in's own endpoints (never faulted), or None for a request of the API."""
        if request.path == "/healthz":
            return Reply(200, {"ok": True})
        if request.path != "/_faults":
            return None
        if request.method == "DELETE":
            self.clear_faults()
            return Reply(204, b"")
        try:
            self.add_fault(request.body)
        except (AttributeError, TypeError, ValueError) as error:  # BadFault, or a scripted fault's own
            return Reply(400, google_error(400, f"bad fault: {error}"))
        return Reply(201, {"fault": request.body})

    def answer(self, request: Request) -> Reply:
        control = self.control(request)
        if control is not None:
            return control
        fault = self.faults.take(request.method, request.path)
        if fault is not None:
            status, headers, raw = fault
            return Reply(status, raw, headers)
        status, answer = self.route(request)
        with self.lock:
            self.exchanges.append(Exchange(request.method, request.path, request.body, status, answer))
        return Reply(status, answer)


def _handler_for(standin: JsonApiStandIn) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: make dev prints its own lines
            pass

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                return self._send(Reply(400, google_error(400, "the body is not JSON")))
            self._send(standin.answer(Request(self.command, parts.path, parse_qs(parts.query), body)))

        def _send(self, reply: Reply) -> None:
            data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            self.send_response(reply.status)
            if not any(name.lower() == "content-type" for name in reply.headers):
                self.send_header("Content-Type", "application/json; charset=UTF-8")
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return Handler
