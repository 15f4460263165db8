"""Following a task's event stream to its end, across dropped connections (Last-Event-ID)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from typing import Any

from planter_cli.client import ApiError, Client, Unreachable
from planter_cli.render import Renderer
from planter_cli.sse import StreamState, read_events

# Consecutive failed connection attempts before giving up (each waits the server's retry hint).
MAX_RECONNECTS = 20


def watch(
    client: Client, task_id: str, renderer: Renderer, *, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """Follow the task until its ``end`` event and return the finished task. Only ``end`` says a
    task finished: a stream that closes without it (the server's one-minute limit, a dropped
    connection) is resumed after the last event seen, so nothing is missed or shown twice."""
    last_id: str | None = None
    state = StreamState()
    failures = 0
    while True:
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        try:
            response = client.open("GET", f"/api/v1/tasks/{task_id}/events", headers=headers)
        except (Unreachable, ApiError) as error:
            if isinstance(error, ApiError) and error.status not in (502, 503, 504):
                raise
            failures += 1
            if failures > MAX_RECONNECTS:
                raise
            renderer.note(f"reconnecting ({error})")
            sleep((state.retry_ms or 1000) / 1000)
            continue
        try:
            with response:
                for event in read_events(response, state):
                    failures = 0
                    if event.event == "progress":
                        last_id = event.id
                        data = json.loads(event.data)
                        task = None if renderer.as_json or not renderer.live else _task(client, task_id)
                        renderer.progress(data, task, event.id)
                    elif event.event == "end":
                        finished: dict[str, Any] = json.loads(event.data)
                        renderer.end(finished)
                        return finished
        except (OSError, http.client.HTTPException) as error:
            failures += 1
            if failures > MAX_RECONNECTS:
                raise Unreachable(f"the event stream keeps dropping: {error}") from None
            renderer.note(f"connection dropped ({error.__class__.__name__}); resuming after event {last_id}")
        sleep((state.retry_ms or 1000) / 1000)


def _task(client: Client, task_id: str) -> dict[str, Any] | None:
    """The task with its steps, for the per-step bars; None if it cannot be read right now."""
    try:
        task: dict[str, Any] = client.call("GET", f"/api/v1/tasks/{task_id}")
        return task
    except (ApiError, Unreachable):
        return None
