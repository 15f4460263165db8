"""Live updates through the real server (functions-framework's gthread server behind the local
gateway): server-sent events, stream tokens, dashboard ETags. Timings are shortened through the
settings the functions read (heartbeat 1 s, streams of 4 s, stream tokens of 8 s)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest
import requests

from dev.stack import LocalStack
from functions.routes import ROUTES
from tests.e2e.conftest import E2E_ENV, Api, running_stack
from tests.e2e.sse_support import read_stream

LIVE_ENV = {
    **E2E_ENV,
    "EVENTS_POLL_SECONDS": "0.1",
    "EVENTS_HEARTBEAT_SECONDS": "1",
    "EVENTS_STREAM_SECONDS": "4",
    "STREAM_TOKEN_TTL_SECONDS": "8",
}


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with running_stack(LIVE_ENV, "pl") as local:
        yield local


# What common.http logs when it answers 500, or when a started stream fails.
_UNEXPECTED = ("unhandled error", "unexpected database error", "event stream failed")


@pytest.fixture(autouse=True)
def nothing_unexpected_logged(stack: LocalStack) -> Iterator[None]:
    """Each test ends with no request answered 500 and no stream broken by an error meanwhile."""
    assert stack.log_path is not None
    offset = stack.log_path.stat().st_size
    yield
    with stack.log_path.open("rb") as log:
        log.seek(offset)
        text = log.read().decode("utf-8", "replace")
    assert "Traceback" not in text
    assert not [m for m in _UNEXPECTED if f'"message": "{m}"' in text], text[-2000:]


def _history(api: Api, task_id: str) -> list[tuple[str, int]]:
    rows = api.query("SELECT status, progress_percent FROM task_progress WHERE task_id = :t ORDER BY id", t=task_id)
    return [(r["status"], r["progress_percent"]) for r in rows]


def test_a_task_stream_sends_its_history_in_order_then_end(stack: LocalStack, api: Api) -> None:
    email = "live-order@example.test"
    task = api.create(email, "Live Order", step_seconds=0.2)
    got = read_stream(stack.port, f"/api/v1/tasks/{task['task_id']}/events", api.headers(email), timeout=60)
    assert got.status == 200 and got.content_type.startswith("text/event-stream")
    progress = [e for e in got.events if e[0] == "progress"]
    assert [int(e[1] or "") for e in progress] == list(range(1, len(progress) + 1))  # ids count from 1, no gap
    assert [(e[2]["status"], e[2]["progress_percent"]) for e in progress] == _history(api, task["task_id"])
    assert all(e[2]["task_id"] == task["task_id"] for e in progress)
    assert got.events[-1][0] == "end" and got.events[-1][2]["status"] == "completed"
    assert got.events[-1][2]["progress_percent"] == 100 and got.closed_by_server
    assert got.retry  # the client is told how soon to come back


def test_a_dropped_connection_resumes_after_last_event_id_with_nothing_missed_or_repeated(
    stack: LocalStack, api: Api
) -> None:
    email = "live-resume@example.test"
    task = api.create(email, "Live Resume", step_seconds=0.6)
    path = f"/api/v1/tasks/{task['task_id']}/events"
    first = read_stream(stack.port, path, api.headers(email), max_events=2)  # then the client goes away
    assert [e[1] for e in first.events] == ["1", "2"] and not first.closed_by_server
    seen = list(first.events)
    while not seen or seen[-1][0] != "end":  # reconnect as EventSource does, each time after the last id
        time.sleep(0.5)
        last_id = next(e[1] for e in reversed(seen) if e[1] is not None)
        again = read_stream(stack.port, path, {**api.headers(email), "Last-Event-ID": last_id}, max_events=2)
        assert again.status == 200
        seen += again.events
    ids = [int(e[1] or "") for e in seen if e[0] == "progress"]
    assert ids == list(range(1, len(ids) + 1)), ids  # none missed, none repeated
    assert [(e[2]["status"], e[2]["progress_percent"]) for e in seen if e[0] == "progress"] == _history(
        api, task["task_id"]
    )
    assert seen[-1][2]["status"] == "completed"


def test_a_quiet_stream_sends_heartbeats_and_ends_by_itself_without_end(stack: LocalStack, api: Api) -> None:
    email = "live-quiet@example.test"
    task = api.create(email, "Live Quiet", step_seconds=8)  # nothing new for longer than a stream lives
    got = read_stream(stack.port, f"/api/v1/tasks/{task['task_id']}/events", api.headers(email), timeout=20)
    assert got.closed_by_server and 3.5 <= got.seconds < 8, got.seconds  # EVENTS_STREAM_SECONDS=4
    assert [e[0] for e in got.events] == ["progress"] * len(got.events)  # no "end": the task is not finished
    heartbeats = [t for t, text in got.comments if text == "heartbeat"]
    assert len(heartbeats) >= 2
    gaps = [b - a for a, b in zip([0.0, *heartbeats], [*heartbeats, got.seconds], strict=True)]
    assert max(gaps) < 2.5, gaps  # quiet for at most about a heartbeat interval
    assert len(got.retry) >= 2  # at the start and again when it ends
    assert api.task(email, task["task_id"])["status"] not in ("completed", "failed", "cancelled")
    assert api.cancel(email, task["task_id"]).status_code == 200


def test_event_routes_refuse_missing_tokens_and_other_users_tasks(stack: LocalStack, api: Api) -> None:
    task = api.create("live-owner@example.test", "Live Owner", step_seconds=0.1)
    path = f"/api/v1/tasks/{task['task_id']}/events"
    for route in (path, "/api/v1/events"):
        got = read_stream(stack.port, route, {})
        assert got.status == 401 and got.body["status"] == 401
    other = read_stream(stack.port, path, api.headers("live-stranger@example.test"))
    assert other.status == 404 and other.body["status"] == 404
    bad_id = read_stream(stack.port, path, {**api.headers("live-owner@example.test"), "Last-Event-ID": "x"})
    assert bad_id.status == 400


def test_stream_tokens_open_only_the_callers_streams_and_nothing_else_until_they_expire(
    stack: LocalStack, api: Api
) -> None:
    email = "live-token@example.test"
    task = api.create(email, "Live Token", step_seconds=0.1)
    foreign = api.create("live-token-other@example.test", "Other", step_seconds=0.1)
    api.wait_terminal(email, task["task_id"])
    issued = requests.post(f"{stack.base_url}/api/v1/stream-tokens", headers=api.headers(email), timeout=10)
    assert issued.status_code == 201, issued.text
    token, expires_at = issued.json()["token"], issued.json()["expires_at"]
    assert expires_at.endswith("Z")
    path = f"/api/v1/tasks/{task['task_id']}/events"
    got = read_stream(stack.port, f"{path}?access_token={token}", {})
    assert got.status == 200 and got.events[-1][0] == "end"
    mine = read_stream(stack.port, f"/api/v1/events?access_token={token}", {}, timeout=2)
    assert mine.status == 200
    # Only the caller's own streams.
    got = read_stream(stack.port, f"/api/v1/tasks/{foreign['task_id']}/events?access_token={token}", {})
    assert got.status == 404
    # Refused on every other route of the route table, as a query parameter and as a bearer token.
    ids = {"task_id": task["task_id"], "job_id": str(uuid.uuid4()), "conversation_id": str(uuid.uuid4())}
    others = [(r.method, r.path.format(**ids)) for r in ROUTES if r.auth in ("user", "callback", "internal")]
    assert len(others) >= 30  # the whole table, not a sample of it
    bearer = {"Authorization": f"Bearer {token}"}
    for method, route in others:
        for url, headers in ((f"{route}?access_token={token}", {}), (route, bearer)):
            answer = requests.request(method, stack.base_url + url, headers=headers, json={}, timeout=10)
            assert answer.status_code == 401, (method, url, answer.status_code)
    # A stream token is not a bearer token on the event routes either, nor a user token anywhere.
    assert read_stream(stack.port, path, bearer).status == 401
    expires = datetime.fromisoformat(expires_at.replace("Z", "+00:00")).timestamp()
    assert 0 < expires - time.time() <= 8  # STREAM_TOKEN_TTL_SECONDS=8, still valid up to here
    time.sleep(expires - time.time() + 1.1)
    expired = read_stream(stack.port, f"{path}?access_token={token}", {})
    assert expired.status == 401 and "expired" in expired.body["detail"]


def test_the_user_stream_sends_each_change_of_the_callers_tasks(stack: LocalStack, api: Api) -> None:
    email = "live-user@example.test"
    running = api.create(email, "Live Running", step_seconds=1)
    got_first = read_stream(stack.port, "/api/v1/events", api.headers(email), max_events=1, timeout=10)
    # A fresh stream starts with the caller's active tasks as they stand.
    assert got_first.events[0][0] == "task" and got_first.events[0][2]["task_id"] == running["task_id"]
    assert "estimated_completion_at" in got_first.events[0][2]
    cursor = got_first.events[0][1]
    assert cursor is not None
    finished = api.create(email, "Live Finished", step_seconds=0.1)
    api.wait_terminal(email, finished["task_id"])
    resumed = read_stream(stack.port, "/api/v1/events", {**api.headers(email), "Last-Event-ID": cursor}, timeout=6)
    mine = [e[2] for e in resumed.events if e[2]["task_id"] == finished["task_id"]]
    assert mine and mine[-1]["status"] == "completed" and "steps" in mine[-1]  # the whole task at the end
    others = read_stream(stack.port, "/api/v1/events", api.headers("live-nobody@example.test"), timeout=2)
    assert others.status == 200 and others.events == []


# Insights are cached an hour (API.md), so their tag rightly holds after a task ends: their 304 is
# checked in tests/integration/test_insights.py.
DASHBOARD_GETS = [
    "/api/v1/dashboard/active-tasks",
    "/api/v1/dashboard/metrics",
    "/api/v1/dashboard/time-series?metric=tasks_created",
    "/api/v1/dashboard/steps",
]


def test_every_dashboard_get_is_covered_below() -> None:
    conditional = {r.path for r in ROUTES if r.conditional}
    assert conditional == {p.split("?")[0] for p in DASHBOARD_GETS} | {"/api/v1/dashboard/insights"}


@pytest.mark.parametrize("path", DASHBOARD_GETS)
def test_each_dashboard_route_answers_304_while_its_figures_are_unchanged(
    stack: LocalStack, api: Api, path: str
) -> None:
    email = f"live-etag-{path.rsplit('/', 1)[1][:6]}@example.test"
    first = requests.get(stack.base_url + path, headers=api.headers(email), timeout=10)
    tag = first.headers["ETag"]
    assert first.status_code == 200 and tag.startswith('"')
    time.sleep(1.1)  # metrics' own timestamp moves on; the figures do not
    again = requests.get(stack.base_url + path, headers={**api.headers(email), "If-None-Match": tag}, timeout=10)
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == tag
    task = api.create(email, "Etag Changer", step_seconds=0.1)
    api.wait_terminal(email, task["task_id"])
    changed = requests.get(stack.base_url + path, headers={**api.headers(email), "If-None-Match": tag}, timeout=10)
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
