"""The live-update routes: a task's event stream, the caller's stream, and stream tokens."""

from __future__ import annotations

from datetime import datetime

from common.errors import BadRequest
from common.http import Call, EventStream, Reply
from common.models_live import StreamTokenOut
from common.services import events
from common.stream_tokens import issue_stream_token


def parse_last_event_id(raw: str | None) -> int:
    """The position a task stream resumes after (0: from the start); 400 when it is not one."""
    if raw is None or not raw.strip():
        return 0
    try:
        position = int(raw.strip())
    except ValueError:
        raise BadRequest("Last-Event-ID must be a position in the task's history") from None
    if position < 0:
        raise BadRequest("Last-Event-ID must not be negative")
    return position


def parse_user_cursor(raw: str | None) -> datetime | None:
    if raw is None or not raw.strip():
        return None
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise BadRequest("Last-Event-ID is not a cursor of this stream") from None
    if moment.tzinfo is None:
        raise BadRequest("Last-Event-ID is not a cursor of this stream")
    return moment


def task_events(call: Call) -> Reply:
    after = parse_last_event_id(call.request.headers.get("Last-Event-ID"))
    timings = events.StreamTimings.from_settings(call.rt.settings)
    return Reply(EventStream(events.task_stream(call.rt, call.uuid_param("task_id"), call.user, after, timings)))


def user_events(call: Call) -> Reply:
    since = parse_user_cursor(call.request.headers.get("Last-Event-ID"))
    timings = events.StreamTimings.from_settings(call.rt.settings)
    return Reply(EventStream(events.user_stream(call.rt, call.user, since, timings)))


def create_stream_token(call: Call) -> Reply:
    issued = issue_stream_token(call.user.id, call.user.email, call.rt.settings, call.rt.clock.time())
    expires_at = issued.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return Reply(StreamTokenOut(token=issued.token, expires_at=expires_at), 201)
