"""Live updates as server-sent events: a task's progress history, and a user's changing tasks.

Each open stream is a generator that reads the history table every ``poll_seconds`` (the history
is the source of truth; docs/DESIGN.md "Live updates" measures this against LISTEN/NOTIFY), sends
a comment heartbeat when it has been quiet for ``heartbeat_seconds`` and ends by itself after
``lifetime_seconds`` with a ``retry:``, so that no stream outlives a function's request timeout and
a client always comes back. Whether a task has finished is decided by the task's status only:
the ``end`` event carries the terminal task; a stream that closes without it has not finished.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from common import log
from common.config import Settings
from common.errors import NotFound, PlanterError
from common.queries import events as q
from common.services import dashboard, tasks
from common.services.users import User

if TYPE_CHECKING:
    from common.runtime import Runtime

logger = log.get_logger("planter.events")

# A change committed after a later one was read (updated_at is its transaction's start) is
# caught by reading this far back again; what was already sent is skipped by (task, version).
_USER_STREAM_OVERLAP = timedelta(seconds=5)
_USER_STREAM_BATCH = 500


@dataclass(frozen=True)
class StreamTimings:
    poll_seconds: float
    heartbeat_seconds: float
    lifetime_seconds: float
    retry_ms: int
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamTimings:
        return cls(
            poll_seconds=settings.events_poll_seconds,
            heartbeat_seconds=settings.events_heartbeat_seconds,
            lifetime_seconds=settings.events_stream_seconds,
            retry_ms=settings.events_retry_ms,
        )


def sse(event: str, data: Any, event_id: str | None = None) -> str:
    """One server-sent event; the data is one line of JSON."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _history(rt: Runtime, task_id: uuid.UUID, user: User, after: int) -> dict[str, Any]:
    found = rt.db.statement(lambda conn: q.history_after(conn, task_id, user.id, after))
    if found is None:
        raise NotFound("no task with that id")
    return found


def task_stream(rt: Runtime, task_id: uuid.UUID, user: User, after: int, timings: StreamTimings) -> Iterator[str]:
    """The task's events after position ``after``. The first read happens here, before any byte is
    sent, so an unknown or another user's task is a 404, not an empty stream."""
    first = _history(rt, task_id, user, after)
    return _task_events(rt, task_id, user, after, first, timings)


def _task_events(
    rt: Runtime, task_id: uuid.UUID, user: User, position: int, snapshot: dict[str, Any], timings: StreamTimings
) -> Iterator[str]:
    started = last_sent = timings.clock()
    yield f"retry: {timings.retry_ms}\n\n"
    while True:
        for entry in snapshot["entries"]:
            position = entry.pop("position")
            yield sse("progress", {"task_id": str(task_id), **entry}, str(position))
            last_sent = timings.clock()
        if snapshot["terminal"]:
            task = tasks.get_task(rt, task_id, user).task
            yield sse("end", task.model_dump(mode="json"))
            return
        now = timings.clock()
        if now - started >= timings.lifetime_seconds:
            yield f": the stream ends here; reconnect with Last-Event-ID\nretry: {timings.retry_ms}\n\n"
            return
        if now - last_sent >= timings.heartbeat_seconds:
            yield ": heartbeat\n\n"
            last_sent = now
        timings.sleep(timings.poll_seconds)
        try:
            snapshot = _history(rt, task_id, user, position)
        except PlanterError as error:  # the database went away: the client reconnects and resumes
            logger.warning("task stream ended early: %s", error.detail)
            yield f": unavailable; reconnect\nretry: {timings.retry_ms}\n\n"
            return


def _cursor(moment: datetime) -> str:
    return moment.isoformat()


def user_stream(rt: Runtime, user: User, since: datetime | None, timings: StreamTimings) -> Iterator[str]:
    """The user's ``task`` events: on a fresh stream first their active tasks as they stand, then
    every change (an active task as the dashboard shows it, a finished one as the whole task)."""
    start = rt.db.statement(q.database_now)
    return _user_events(rt, user, since, start, timings)


def _task_event_data(rt: Runtime, user: User, changed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    active = {}
    if any(not c["terminal"] for c in changed):
        active = {a.task_id: a.model_dump(mode="json") for a in dashboard.active_tasks(rt, user, "UTC").active_tasks}
    out = []
    for change in changed:
        task_id = str(change["id"])
        if change["terminal"] or task_id not in active:
            # Finished (or finished between the two reads): the whole task, which no longer changes.
            out.append(tasks.get_task(rt, change["id"], user).task.model_dump(mode="json"))
        else:
            out.append(active[task_id])
    return out


def _user_events(
    rt: Runtime, user: User, since: datetime | None, start: datetime, timings: StreamTimings
) -> Iterator[str]:
    started = last_sent = timings.clock()
    sent: set[tuple[str, int]] = set()
    yield f"retry: {timings.retry_ms}\n\n"
    if since is None:
        for item in dashboard.active_tasks(rt, user, "UTC").active_tasks:
            yield sse("task", item.model_dump(mode="json"), _cursor(start))
        since = start
    cursor = since
    while True:
        try:
            since_overlap = cursor - _USER_STREAM_OVERLAP
            changed = rt.db.statement(
                lambda conn: q.changed_tasks(conn, user.id, since_overlap, _USER_STREAM_BATCH)  # noqa: B023
            )
            fresh = [c for c in changed if (str(c["id"]), c["version"]) not in sent]
            for change, data in zip(fresh, _task_event_data(rt, user, fresh), strict=True):
                sent.add((str(change["id"]), change["version"]))
                cursor = max(cursor, change["updated_at"])
                yield sse("task", data, _cursor(cursor))
                last_sent = timings.clock()
        except PlanterError as error:
            logger.warning("user stream ended early: %s", error.detail)
            yield f": unavailable; reconnect\nretry: {timings.retry_ms}\n\n"
            return
        now = timings.clock()
        if now - started >= timings.lifetime_seconds:
            yield f": the stream ends here; reconnect with Last-Event-ID\nretry: {timings.retry_ms}\n\n"
            return
        if now - last_sent >= timings.heartbeat_seconds:
            yield ": heartbeat\n\n"
            last_sent = now
        timings.sleep(timings.poll_seconds)
