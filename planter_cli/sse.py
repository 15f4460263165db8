"""Reading a text/event-stream response: events, comments and the server's retry hint."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    event: str
    data: str
    id: str | None


@dataclass
class StreamState:
    """What the stream said besides events: its last retry hint and the heartbeats seen."""

    retry_ms: int | None = None
    comments: int = 0


def read_events(response: Any, state: StreamState) -> Iterator[Event]:
    """The events of an open stream, until the server closes it (the WHATWG parsing rules, minus
    what Planter never sends: multi-line fields are joined, BOMs and bare CRs ignored)."""
    event, event_id = "message", None
    data: list[str] = []
    while True:
        raw = response.readline()
        if not raw:
            return
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield Event(event=event, data="\n".join(data), id=event_id)
            event, data, event_id = "message", [], None
            continue
        if line.startswith(":"):
            state.comments += 1
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value
        elif name == "retry" and value.isdigit():
            state.retry_ms = int(value)
