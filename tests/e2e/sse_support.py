"""A raw server-sent-events reader for the end-to-end tests: what arrived, line by line, with
when it arrived (independent of the CLI's own parser, so a bug in one cannot hide one in the other)."""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Received:
    status: int
    content_type: str
    events: list[tuple[str, str | None, Any]] = field(default_factory=list)  # (event, id, data)
    comments: list[tuple[float, str]] = field(default_factory=list)  # (seconds since open, text)
    retry: list[int] = field(default_factory=list)
    closed_by_server: bool = False
    seconds: float = 0.0
    body: Any = None


def read_stream(
    port: int, path: str, headers: dict[str, str], *, max_events: int | None = None, timeout: float = 30
) -> Received:
    """Open ``path`` and read until the server closes the stream, ``max_events`` events arrived
    (then the connection is dropped, as a client that goes away), or ``timeout`` passes."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Accept": "text/event-stream", **headers})
        response = conn.getresponse()
        got = Received(status=response.status, content_type=response.getheader("Content-Type", ""))
        if response.status != 200:
            raw = response.read()
            got.body = json.loads(raw) if raw else None
            return got
        event, event_id = "message", None
        data: list[str] = []
        while time.monotonic() - started < timeout:
            raw_line = response.readline()
            if not raw_line:
                got.closed_by_server = True
                break
            line = raw_line.decode().rstrip("\n")
            if not line:
                if data:
                    got.events.append((event, event_id, json.loads("\n".join(data))))
                    if max_events is not None and len(got.events) >= max_events:
                        break
                event, event_id, data = "message", None, []
            elif line.startswith(":"):
                got.comments.append((time.monotonic() - started, line[1:].strip()))
            else:
                name, _, value = line.partition(": ")
                if name == "event":
                    event = value
                elif name == "id":
                    event_id = value
                elif name == "data":
                    data.append(value)
                elif name.startswith("retry"):
                    got.retry.append(int(line.partition(":")[2].strip()))
        got.seconds = time.monotonic() - started
        return got
    finally:
        conn.close()
