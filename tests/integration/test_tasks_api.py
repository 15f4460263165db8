"""The task API as a browser and an attacker use it: create, read, list, cancel (API.md,
"Projects and tasks"), against a real migrated PostgreSQL per test."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from common.pipeline import INITIAL_MESSAGE, STEP_NAMES, STEPS
from common.queries import tasks as task_q
from common.queries import users as user_q
from dev.gateway import create_app
from tests.conftest import make_token
from tests.contract import STEP_FIELDS, TASK_FIELDS, assert_problem, padded_body

PROJECTS = "/api/v1/projects"
TASKS = "/api/v1/tasks"
ALICE = "alice@example.test"
BOB = "bob@example.test"
PROGRESS_KEYS = {"status", "message", "progress_percent", "org_url", "repo_url", "deployment_url", "timestamp"}
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

Headers = Callable[..., dict[str, str]]


def create(client: Any, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post(PROJECTS, json={"project_name": "Demo", **body}, headers=headers)
    assert response.status_code == 202, response.get_json()
    task: dict[str, Any] = response.get_json()
    return task


def count(engine: sa.Engine, sql: str, **params: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql), params).scalar_one())


def user_id(engine: sa.Engine, email: str) -> uuid.UUID:
    with engine.connect() as conn:
        found: uuid.UUID = conn.execute(sa.text("SELECT id FROM users WHERE email = :e"), {"e": email}).scalar_one()
        return found


# --- POST /api/v1/projects -------------------------------------------------------------------------


def test_create_answers_202_with_the_task(client: Any, auth_header: Headers, enqueued: Any, engine: sa.Engine) -> None:
    response = client.post(
        PROJECTS,
        json={"project_name": "My Shop", "project_description": "Sells plants", "mode": "user"},
        headers=auth_header(),
    )
    assert response.status_code == 202, response.get_json()
    assert response.mimetype == "application/json"
    task = response.get_json()
    assert response.headers["Location"] == f"/api/v1/tasks/{task['task_id']}"
    assert set(task) == TASK_FIELDS
    uuid.UUID(task["task_id"])
    assert {k: task[k] for k in ("type", "project_name", "project_description", "mode", "status")} == {
        "type": "create_project",
        "project_name": "My Shop",
        "project_description": "Sells plants",
        "mode": "user",
        "status": "initializing",
    }
    assert task["progress_percent"] == 0
    assert task["message"] == INITIAL_MESSAGE
    assert task["current_step"] == STEP_NAMES[0]
    for key in ("org_url", "repo_url", "deployment_url", "gcp_project_id", "error_message"):
        assert task[key] is None
    for key in ("completed_at", "failed_at", "cancelled_at"):
        assert task[key] is None
    assert ISO_Z.match(task["created_at"]) and ISO_Z.match(task["updated_at"])
    assert [s["name"] for s in task["steps"]] == list(STEP_NAMES)
    for step in task["steps"]:
        assert set(step) == STEP_FIELDS
        assert (step["status"], step["attempts"], step["started_at"], step["finished_at"], step["error"]) == (
            "pending",
            0,
            None,
            None,
            None,
        )
    # Written in one transaction: the task, its steps, its first progress row; then step one queued.
    assert count(engine, "SELECT count(*) FROM tasks") == 1
    assert count(engine, "SELECT count(*) FROM task_steps") == len(STEP_NAMES)
    assert count(engine, "SELECT count(*) FROM task_progress") == 1
    assert enqueued.calls == [(task["task_id"], STEP_NAMES[0], 0)]
    # The same object is what GET answers.
    read = client.get(response.headers["Location"], headers=auth_header())
    assert read.get_json() == task


def test_defaults_and_boundaries_are_accepted(client: Any, auth_header: Headers) -> None:
    task = create(client, auth_header(), project_name="x")
    assert (task["mode"], task["project_description"]) == ("saas", "")
    create(client, auth_header(), project_name="n" * 100, project_description="d" * 5000)
    create(client, auth_header(), project_name="Ünïcødé app 🌱")  # slugifies to "app"
    create(client, auth_header(), project_name="ok", simulate={"step_seconds": 0, "fail_step": "deploying"})


# (body, the field the errors map must name)
_INVALID_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("name-missing", {}, "project_name"),
    ("name-empty", {"project_name": ""}, "project_name"),
    ("name-101-chars", {"project_name": "n" * 101}, "project_name"),
    ("name-blank", {"project_name": "   "}, "project_name"),
    ("name-only-symbols", {"project_name": "--- ... ---"}, "project_name"),
    ("name-no-latin-letters", {"project_name": "日本語"}, "project_name"),
    ("name-dot-git", {"project_name": "site.git"}, "project_name"),
    ("name-number", {"project_name": 123}, "project_name"),
    ("name-null", {"project_name": None}, "project_name"),
    ("name-list", {"project_name": ["a"]}, "project_name"),
    ("name-nul", {"project_name": "ab\x00cd"}, "project_name"),
    ("name-lone-surrogate", {"project_name": "ab\ud800cd"}, "project_name"),
    ("description-5001-chars", {"project_name": "x", "project_description": "d" * 5001}, "project_description"),
    ("description-number", {"project_name": "x", "project_description": 5}, "project_description"),
    ("description-null", {"project_name": "x", "project_description": None}, "project_description"),
    ("description-nul", {"project_name": "x", "project_description": "a\x00b"}, "project_description"),
    ("mode-unknown", {"project_name": "x", "mode": "admin"}, "mode"),
    ("mode-uppercase", {"project_name": "x", "mode": "SAAS"}, "mode"),
    ("mode-null", {"project_name": "x", "mode": None}, "mode"),
    ("unknown-field", {"project_name": "x", "owner": "mallory"}, "owner"),
    ("unknown-field-user-id", {"project_name": "x", "user_id": str(uuid.uuid4())}, "user_id"),
    ("simulate-not-object", {"project_name": "x", "simulate": "yes"}, "simulate"),
    ("simulate-negative-seconds", {"project_name": "x", "simulate": {"step_seconds": -1}}, "simulate.step_seconds"),
    ("simulate-too-slow", {"project_name": "x", "simulate": {"step_seconds": 601}}, "simulate.step_seconds"),
    ("simulate-seconds-text", {"project_name": "x", "simulate": {"step_seconds": "fast"}}, "simulate.step_seconds"),
    ("simulate-unknown-step", {"project_name": "x", "simulate": {"fail_step": "nope"}}, "simulate.fail_step"),
    ("simulate-negative-failures", {"project_name": "x", "simulate": {"failures": -1}}, "simulate.failures"),
    ("simulate-too-many-failures", {"project_name": "x", "simulate": {"failures": 101}}, "simulate.failures"),
    ("simulate-fractional-failures", {"project_name": "x", "simulate": {"failures": 1.5}}, "simulate.failures"),
    ("simulate-unknown-field", {"project_name": "x", "simulate": {"crash": True}}, "simulate.crash"),
]


def test_every_validation_rule_is_a_422_naming_the_field(
    client: Any, auth_header: Headers, enqueued: Any, engine: sa.Engine
) -> None:
    wrong: dict[str, Any] = {}
    for name, body, field in _INVALID_BODIES:
        response = client.post(PROJECTS, data=json.dumps(body), content_type="application/json", headers=auth_header())
        problem = response.get_json() or {}
        if (
            response.status_code != 422
            or response.mimetype != "application/problem+json"
            or not isinstance(problem.get("errors"), dict)
            or field not in problem["errors"]
            or not all(isinstance(v, str) for v in problem["errors"].values())
        ):
            wrong[name] = (response.status_code, problem)
    assert wrong == {}
    assert count(engine, "SELECT count(*) FROM tasks") == 0
    assert enqueued.calls == []


def test_simulate_is_refused_by_any_other_step_provider(
    client_with: Any, auth_header: Headers, engine: sa.Engine
) -> None:
    client = client_with(step_provider="live")
    response = client.post(PROJECTS, json={"project_name": "x", "simulate": {"step_seconds": 1}}, headers=auth_header())
    assert "simulate" in assert_problem(response, 422)["errors"]
    assert count(engine, "SELECT count(*) FROM tasks") == 0
    create(client, auth_header(), project_name="x")  # without it the request is fine


def test_malformed_json_is_400(client: Any, auth_header: Headers) -> None:
    malformed = {
        "empty": b"",
        "truncated": b"{",
        "single-quotes": b"{'project_name': 'x'}",
        "trailing-garbage": b'{"project_name": "x"} trailing',
        "not-utf8": b'{"project_name": "\xff\xfe"}',
        "nested-too-deep": b"[" * 50_000 + b"]" * 10,  # within the size limit, beyond the parser's stack
    }
    for name, raw in malformed.items():
        response = client.post(PROJECTS, data=raw, content_type="application/json", headers=auth_header())
        assert response.status_code == 400, (name, response.get_json())
        assert_problem(response, 400)


def test_a_json_body_that_is_not_an_object_is_422(client: Any, auth_header: Headers) -> None:
    for raw in (b'[{"project_name": "x"}]', b'"x"', b"42", b"null", b"true"):
        response = client.post(PROJECTS, data=raw, content_type="application/json", headers=auth_header())
        assert "body" in assert_problem(response, 422)["errors"], raw


def test_what_json_does_not_allow_is_400_not_500(client: Any, auth_header: Headers, engine: sa.Engine) -> None:
    for raw in (
        b"NaN",
        b'{"project_name": "x", "simulate": {"step_seconds": NaN}}',
        b'{"project_name": "x", "simulate": {"step_seconds": -Infinity}}',
        b'{"project_name": "x", "simulate": {"failures": ' + b"9" * 5000 + b"}}",  # past Python's 4,300 digits
    ):
        response = client.post(PROJECTS, data=raw, content_type="application/json", headers=auth_header())
        assert "not valid JSON" in assert_problem(response, 400)["detail"], raw[:80]
    assert count(engine, "SELECT count(*) FROM tasks") == 0


@pytest.mark.parametrize("depth", [900, 1_200, 5_000])
def test_deep_nesting_within_the_size_limit_is_a_client_error(
    client: Any, auth_header: Headers, engine: sa.Engine, depth: int
) -> None:
    # Whether the parser takes it (Python 3.12+ parses deeper than the recursion limit) or refuses
    # it, what follows the parse must not recurse into a 500.
    raw = b'{"project_name": "x", "simulate": ' + b"[" * depth + b"]" * depth + b"}"
    response = client.post(PROJECTS, data=raw, content_type="application/json", headers=auth_header())
    assert response.status_code in (400, 422), response.get_data(as_text=True)[:200]
    assert count(engine, "SELECT count(*) FROM tasks") == 0


def test_a_nul_character_anywhere_in_the_body_is_422(client: Any, auth_header: Headers, engine: sa.Engine) -> None:
    cases = {
        "project_name": {"project_name": "a\x00b"},
        "project_description": {"project_name": "x", "project_description": "\x00"},
        "simulate.fail_step": {"project_name": "x", "simulate": {"fail_step": "deploying\x00"}},
        "simulate": {"project_name": "x", "simulate": {"fail\x00step": "deploying"}},
    }
    for field, body in cases.items():
        response = client.post(PROJECTS, json=body, headers=auth_header())
        assert assert_problem(response, 422)["errors"] == {field: "must not contain NUL characters"}, body
    assert count(engine, "SELECT count(*) FROM tasks") == 0


def test_a_body_that_is_not_json_is_415(client: Any, auth_header: Headers, engine: sa.Engine) -> None:
    body = json.dumps({"project_name": "x"})
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded", "application/jsonp"):
        response = client.post(PROJECTS, data=body, content_type=content_type, headers=auth_header())
        assert_problem(response, 415)
    form = client.post(PROJECTS, data={"project_name": "x"}, headers=auth_header())  # multipart/form-data
    assert_problem(form, 415)
    assert count(engine, "SELECT count(*) FROM tasks") == 0
    # The charset parameter and the +json suffix are still JSON.
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        ok = client.post(PROJECTS, data=body, content_type=content_type, headers=auth_header())
        assert ok.status_code == 202, (content_type, ok.get_json())


def test_an_oversized_body_is_413(client: Any, auth_header: Headers, engine: sa.Engine) -> None:
    limit = 64 * 1024
    over = padded_body(limit + 1)
    response = client.post(PROJECTS, data=over, content_type="application/json", headers=auth_header())
    assert_problem(response, 413)
    # Without a Content-Length (chunked; the server marks the input terminated), still 413.
    chunked = client.post(
        PROJECTS,
        input_stream=io.BytesIO(over),
        content_type="application/json",
        headers=auth_header(),
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert_problem(chunked, 413)
    assert count(engine, "SELECT count(*) FROM tasks") == 0
    # At the limit the size is fine; the description is then too long for its field (422, not 413).
    at_limit = client.post(PROJECTS, data=padded_body(limit), content_type="application/json", headers=auth_header())
    assert at_limit.status_code == 422


def test_the_body_limit_is_configurable(client_with: Any, auth_header: Headers, engine: sa.Engine) -> None:
    client = client_with(max_body_bytes=1000)
    over = client.post(PROJECTS, data=padded_body(1001), content_type="application/json", headers=auth_header())
    assert_problem(over, 413)
    at = client.post(PROJECTS, data=padded_body(1000), content_type="application/json", headers=auth_header())
    assert at.status_code == 202, at.get_json()
    assert count(engine, "SELECT count(*) FROM tasks") == 1


# --- Idempotency-Key ------------------------------------------------------------------------------


def test_idempotent_replay_returns_the_same_task_once(
    client: Any, auth_header: Headers, enqueued: Any, engine: sa.Engine
) -> None:
    headers = {**auth_header(), "Idempotency-Key": "key-1"}
    body = {"project_name": "Twice", "project_description": "same"}
    first = client.post(PROJECTS, json=body, headers=headers)
    # Key order and whitespace do not make another body.
    again = client.post(PROJECTS, data='{"project_description":"same",  "project_name":"Twice"}', headers=headers,
                        content_type="application/json")  # fmt: skip
    assert first.status_code == again.status_code == 202
    assert again.get_json()["task_id"] == first.get_json()["task_id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert count(engine, "SELECT count(*) FROM tasks") == 1
    assert len(enqueued.calls) == 1

    other = client.post(PROJECTS, json={**body, "mode": "user"}, headers=headers)
    assert "Idempotency-Key" in assert_problem(other, 422)["errors"]
    assert count(engine, "SELECT count(*) FROM tasks") == 1

    # Keys are per user: Bob's "key-1" is his own, and never hands him Alice's task.
    bobs = client.post(PROJECTS, json=body, headers={**auth_header(BOB), "Idempotency-Key": "key-1"})
    assert bobs.status_code == 202
    assert bobs.get_json()["task_id"] != first.get_json()["task_id"]
    # A new key is a new task.
    fresh = client.post(PROJECTS, json=body, headers={**auth_header(), "Idempotency-Key": "key-2"})
    assert fresh.get_json()["task_id"] != first.get_json()["task_id"]
    assert count(engine, "SELECT count(*) FROM tasks") == 3
    assert len(enqueued.calls) == 3


def test_an_invalid_idempotency_key_is_422(client: Any, auth_header: Headers, engine: sa.Engine) -> None:
    for key in ("", "k" * 256, "tab\there"):
        response = client.post(PROJECTS, json={"project_name": "x"}, headers={**auth_header(), "Idempotency-Key": key})
        assert "Idempotency-Key" in assert_problem(response, 422)["errors"], key
    assert count(engine, "SELECT count(*) FROM tasks") == 0
    ok = client.post(PROJECTS, json={"project_name": "x"}, headers={**auth_header(), "Idempotency-Key": "k" * 255})
    assert ok.status_code == 202


def test_concurrent_requests_with_one_key_create_one_task(
    client: Any, runtime: Any, auth_header: Headers, enqueued: Any, engine: sa.Engine
) -> None:
    client.get(TASKS, headers=auth_header())  # the user exists; the race is about the key
    n = 8
    barrier = threading.Barrier(n)
    answers: list[tuple[int, str | None]] = []
    app = create_app(runtime)
    headers = {**auth_header(), "Idempotency-Key": "double-click"}

    def submit() -> None:
        own_client = app.test_client()
        barrier.wait()
        response = own_client.post(PROJECTS, json={"project_name": "Race"}, headers=headers)
        answers.append((response.status_code, (response.get_json() or {}).get("task_id")))

    threads = [threading.Thread(target=submit) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [status for status, _ in answers] == [202] * n
    assert len({task_id for _, task_id in answers}) == 1
    assert count(engine, "SELECT count(*) FROM tasks") == 1
    assert count(engine, "SELECT count(*) FROM idempotency_keys") == 1
    assert len(enqueued.calls) == 1


# --- Quota ---------------------------------------------------------------------------------------


def _set_usage(engine: sa.Engine, email: str, operations: int, months_ago: int = 0) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                """
                INSERT INTO usage (user_id, period_start, ai_operations_count)
                VALUES (:u, (date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => :m))::date, :n)
                ON CONFLICT (user_id, period_start) DO UPDATE SET ai_operations_count = excluded.ai_operations_count
                """
            ),
            {"u": user_id(engine, email), "m": months_ago, "n": operations},
        )


def test_at_the_free_limit_creation_is_429_and_writes_nothing(
    client: Any, auth_header: Headers, enqueued: Any, engine: sa.Engine
) -> None:
    client.get(TASKS, headers=auth_header())
    _set_usage(engine, ALICE, 100, months_ago=1)  # last month's usage does not count
    _set_usage(engine, ALICE, 99)
    replayable = client.post(PROJECTS, json={"project_name": "x"}, headers={**auth_header(), "Idempotency-Key": "k"})
    assert replayable.status_code == 202
    _set_usage(engine, ALICE, 100)
    refused = client.post(PROJECTS, json={"project_name": "y"}, headers=auth_header())
    assert_problem(refused, 429)
    assert int(refused.headers["Retry-After"]) > 0
    assert count(engine, "SELECT count(*) FROM tasks") == 1
    assert count(engine, "SELECT count(*) FROM task_progress") == 1
    assert len(enqueued.calls) == 1
    # A replay is not a new operation: it still answers the task it created.
    replay = client.post(PROJECTS, json={"project_name": "x"}, headers={**auth_header(), "Idempotency-Key": "k"})
    assert replay.get_json()["task_id"] == replayable.get_json()["task_id"]
    # Another user is not affected by Alice's usage.
    create(client, auth_header(BOB))


def test_pipelines_in_flight_reserve_their_operations_even_in_a_concurrent_burst(
    client: Any, auth_header: Headers, engine: sa.Engine
) -> None:
    # Nothing runs here (the enqueuer only records), so every accepted pipeline stays in flight
    # and reserves the 1 + 1 AI operations of its customization and issue steps.
    per_pipeline = sum(step.ai_operations for step in STEPS)
    assert per_pipeline == 2
    statuses: list[int] = []

    def burst() -> None:
        own = client.application.test_client()
        for _ in range(8):  # 64 requests for the 50 pipelines the free tier's 100 operations reserve
            statuses.append(own.post(PROJECTS, json={"project_name": "burst"}, headers=auth_header()).status_code)

    threads = [threading.Thread(target=burst) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(set(statuses)) == [202, 429]
    assert statuses.count(202) == 100 // per_pipeline == count(engine, "SELECT count(*) FROM tasks")
    refused = client.post(PROJECTS, json={"project_name": "one more"}, headers=auth_header())
    assert "0 used, 100 reserved" in assert_problem(refused, 429)["detail"]
    # A cancelled pipeline gives its reservation back; one whose customization ran keeps only 1.
    tasks = client.get(f"{TASKS}?limit=2", headers=auth_header()).get_json()["tasks"]
    assert client.post(f"{TASKS}/{tasks[0]['task_id']}/cancel", headers=auth_header()).status_code == 200
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE task_steps SET status = 'succeeded' WHERE task_id = :t AND name = 'customizing_project'"),
            {"t": tasks[1]["task_id"]},
        )
    _set_usage(engine, ALICE, 1)  # what that customization metered
    assert client.post(PROJECTS, json={"project_name": "after"}, headers=auth_header()).status_code == 202
    assert_problem(client.post(PROJECTS, json={"project_name": "full"}, headers=auth_header()), 429)


def test_tier_limits_come_from_the_subscription(client: Any, auth_header: Headers, engine: sa.Engine) -> None:
    client.get(TASKS, headers=auth_header())
    with engine.begin() as conn:
        user_q.set_subscription(conn, user_id(engine, ALICE), "pro")
    _set_usage(engine, ALICE, 999)
    create(client, auth_header())
    _set_usage(engine, ALICE, 1000)
    assert_problem(client.post(PROJECTS, json={"project_name": "x"}, headers=auth_header()), 429)
    with engine.begin() as conn:
        user_q.set_subscription(conn, user_id(engine, ALICE), "enterprise")  # -1: never limited
    _set_usage(engine, ALICE, 1_000_000)
    create(client, auth_header())


# --- GET /api/v1/tasks/{id} and /progress ---------------------------------------------------------


def test_etag_and_if_none_match(client: Any, auth_header: Headers) -> None:
    task = create(client, auth_header())
    path = f"{TASKS}/{task['task_id']}"
    first = client.get(path, headers=auth_header())
    tag = first.headers["ETag"]
    assert first.status_code == 200 and tag.startswith('"') and tag.endswith('"')
    for if_none_match in (tag, f'"other", {tag}', "*", f"W/{tag}"):
        cached = client.get(path, headers={**auth_header(), "If-None-Match": if_none_match})
        assert cached.status_code == 304, if_none_match
        assert cached.get_data() == b""
        assert cached.headers["ETag"] == tag
    assert client.get(path, headers={**auth_header(), "If-None-Match": '"other"'}).status_code == 200
    # Any change is a new version: the old tag no longer matches.
    client.post(f"{path}/cancel", headers=auth_header())
    changed = client.get(path, headers={**auth_header(), "If-None-Match": tag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != tag
    assert changed.get_json()["status"] == "cancelled"


def test_progress_is_oldest_first(client: Any, auth_header: Headers, engine: sa.Engine) -> None:
    task = create(client, auth_header())
    task_id = uuid.UUID(task["task_id"])
    for status, percent in (("creating_org", 10), ("forking_template", 25)):
        with engine.begin() as conn:  # one transaction each, as the steps record them
            task_q.insert_progress(conn, task_id, update_id=status, status=status, message=status, percent=percent)
            conn.execute(
                sa.text("UPDATE tasks SET status = :s, progress_percent = :p WHERE id = :id"),
                {"s": status, "p": percent, "id": task_id},
            )
    client.post(f"{TASKS}/{task_id}/cancel", headers=auth_header())
    response = client.get(f"{TASKS}/{task_id}/progress", headers=auth_header())
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"task_id", "progress"}
    assert body["task_id"] == str(task_id)
    entries = body["progress"]
    assert [(e["status"], e["progress_percent"]) for e in entries] == [
        ("initializing", 0),
        ("creating_org", 10),
        ("forking_template", 25),
        ("cancelled", 25),
    ]
    assert all(set(e) == PROGRESS_KEYS and ISO_Z.match(e["timestamp"]) for e in entries)
    timestamps = [e["timestamp"] for e in entries]
    assert timestamps == sorted(timestamps)


# --- GET /api/v1/tasks ------------------------------------------------------------------------------


def _set_status(engine: sa.Engine, task_id: str, status: str) -> None:
    column = {"completed": "completed_at", "failed": "failed_at"}[status]
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE tasks SET status = :s, {column} = now(), version = version + 1 WHERE id = :id"),
            {"s": status, "id": task_id},
        )


def test_list_filters_by_status_newest_first(client: Any, auth_header: Headers, engine: sa.Engine) -> None:
    ids = [create(client, auth_header(), project_name=f"p{i}")["task_id"] for i in range(5)]
    _set_status(engine, ids[0], "completed")
    _set_status(engine, ids[1], "failed")
    client.post(f"{TASKS}/{ids[2]}/cancel", headers=auth_header())

    def listed(query: str = "") -> list[str]:
        response = client.get(f"{TASKS}{query}", headers=auth_header())
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert set(body) == {"tasks", "next_cursor"}
        assert all(set(t) == TASK_FIELDS for t in body["tasks"])
        return [t["task_id"] for t in body["tasks"]]

    assert listed() == ids[::-1]
    assert listed("?status=active") == [ids[4], ids[3]]
    assert listed("?status=completed") == [ids[0]]
    assert listed("?status=failed") == [ids[1]]
    assert listed("?status=cancelled") == [ids[2]]
    assert listed("?limit=1") == [ids[4]]
    assert listed("?limit=100") == ids[::-1]
    for query in ("?status=running", "?status=", "?limit=0", "?limit=101", "?limit=-1", "?limit=ten", "?page=2"):
        assert_problem(client.get(f"{TASKS}{query}", headers=auth_header()), 422)
    assert_problem(client.get(f"{TASKS}?status=active&status=failed", headers=auth_header()), 400)


def test_cursor_pagination_walks_every_task_once(client: Any, auth_header: Headers, engine: sa.Engine) -> None:
    ids = {create(client, auth_header(), project_name=f"p{i}")["task_id"] for i in range(7)}
    # Ties on created_at are the hard case for keyset pagination: give four tasks the same instant.
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE tasks SET created_at = '2026-01-01T00:00:00Z' WHERE id IN "
                "(SELECT id FROM tasks ORDER BY id LIMIT 4)"
            )
        )
        expected = [str(r[0]) for r in conn.execute(sa.text("SELECT id FROM tasks ORDER BY created_at DESC, id DESC"))]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = f"?limit=2&cursor={cursor}" if cursor else "?limit=2"
        body = client.get(f"{TASKS}{query}", headers=auth_header()).get_json()
        seen += [t["task_id"] for t in body["tasks"]]
        cursor = body["next_cursor"]
        pages += 1
        if cursor is None:
            break
        assert pages < 10, "pagination does not end"
    assert seen == expected
    assert set(seen) == ids
    assert pages == 4


def test_garbage_or_foreign_cursors_are_400(client: Any, auth_header: Headers) -> None:
    for i in range(3):
        create(client, auth_header(), project_name=f"a{i}")
        create(client, auth_header(BOB), project_name=f"b{i}")
    cursor = client.get(f"{TASKS}?limit=1", headers=auth_header()).get_json()["next_cursor"]
    assert cursor
    token, _, mac = cursor.partition(".")
    payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    forged_payload = base64.urlsafe_b64encode(json.dumps(["2999-01-01T00:00:00+00:00", payload[1]]).encode())
    garbage = [
        "garbage",
        "a.b",
        ".",
        token,  # no signature
        f"{token}.{'0' * len(mac)}",  # wrong signature
        f"{forged_payload.decode().rstrip('=')}.{mac}",  # edited position, old signature
        cursor[:-1] + ("0" if cursor[-1] != "0" else "1"),
        "é" * 10,
        "%00",
    ]
    for bad in garbage:
        response = client.get(TASKS, query_string={"cursor": bad}, headers=auth_header())
        assert_problem(response, 400)
    # Alice's cursor is refused for Bob: it cannot be tampered or replayed into another user's data.
    assert_problem(client.get(TASKS, query_string={"cursor": cursor}, headers=auth_header(BOB)), 400)
    assert client.get(TASKS, query_string={"cursor": cursor}, headers=auth_header()).status_code == 200


# --- POST /api/v1/tasks/{id}/cancel ---------------------------------------------------------------


def test_cancel_then_cancel_again(client: Any, auth_header: Headers, engine: sa.Engine) -> None:
    task = create(client, auth_header())
    path = f"{TASKS}/{task['task_id']}/cancel"
    response = client.post(path, headers=auth_header())
    assert response.status_code == 200, response.get_json()
    cancelled = response.get_json()
    assert set(cancelled) == TASK_FIELDS
    assert cancelled["status"] == "cancelled"
    assert ISO_Z.match(cancelled["cancelled_at"])
    assert cancelled["completed_at"] is None and cancelled["failed_at"] is None
    assert {s["status"] for s in cancelled["steps"]} == {"skipped"}
    assert cancelled["progress_percent"] == task["progress_percent"]
    again = client.post(path, headers=auth_header())
    assert_problem(again, 409)
    assert client.get(f"{TASKS}/{task['task_id']}", headers=auth_header()).get_json() == cancelled
    # Terminal tasks of every kind refuse.
    for status in ("completed", "failed"):
        other = create(client, auth_header())
        _set_status(engine, other["task_id"], status)
        assert_problem(client.post(f"{TASKS}/{other['task_id']}/cancel", headers=auth_header()), 409)


# --- Object-level authorization ---------------------------------------------------------------------


def test_another_users_task_is_404_on_every_route(client: Any, auth_header: Headers, engine: sa.Engine) -> None:
    alices = [create(client, auth_header(), project_name=f"alice-{i}") for i in range(2)]
    bobs = create(client, auth_header(BOB), project_name="bob")
    tag = client.get(f"{TASKS}/{alices[0]['task_id']}", headers=auth_header()).headers["ETag"]
    unknown = str(uuid.uuid4())

    def as_bob(method: str, path: str, **headers: str) -> Any:
        return client.open(path, method=method, headers={**auth_header(BOB), **headers})

    for task in alices:
        for method, suffix in (("GET", ""), ("GET", "/progress"), ("POST", "/cancel")):
            response = as_bob(method, f"{TASKS}/{task['task_id']}{suffix}")
            body = assert_problem(response, 404)
            # Indistinguishable from an id that does not exist at all.
            assert body == assert_problem(as_bob(method, f"{TASKS}/{unknown}{suffix}"), 404)
        # A matching ETag does not turn the 404 into a 304 either.
        assert as_bob("GET", f"{TASKS}/{task['task_id']}", **{"If-None-Match": tag}).status_code == 404
    for query in ("", "?status=active", "?limit=100"):
        listed = as_bob("GET", f"{TASKS}{query}").get_json()["tasks"]
        assert [t["task_id"] for t in listed] == [bobs["task_id"]]
    # Bob's attempts changed nothing of Alice's.
    for task in alices:
        assert client.get(f"{TASKS}/{task['task_id']}", headers=auth_header()).get_json() == task
    assert count(engine, "SELECT count(*) FROM tasks WHERE status = 'cancelled'") == 0


def test_malformed_ids_are_404(client: Any, auth_header: Headers) -> None:
    create(client, auth_header())
    for bad in ("not-a-uuid", "123", "0" * 33, "%20", "%00", "' OR 1=1 --", "é"):
        for method, suffix in (("GET", ""), ("GET", "/progress"), ("POST", "/cancel")):
            response = client.open(f"{TASKS}/{bad}{suffix}", method=method, headers=auth_header())
            assert_problem(response, 404)


def test_the_email_is_the_identity_whatever_its_case(client: Any) -> None:
    task = create(client, {"Authorization": f"Bearer {make_token('Carol@Example.test')}"})
    again = client.get(
        f"{TASKS}/{task['task_id']}", headers={"Authorization": f"Bearer {make_token('carol@example.TEST')}"}
    )
    assert again.status_code == 200


def test_simulate_is_refused_where_it_is_not_allowed(client_with: Any, auth_header: Headers, engine: sa.Engine) -> None:
    client = client_with(allow_simulate=False)
    response = client.post(PROJECTS, json={"project_name": "x", "simulate": {"step_seconds": 1}}, headers=auth_header())
    assert "simulate" in assert_problem(response, 422)["errors"]
    assert count(engine, "SELECT count(*) FROM tasks") == 0


def test_simulated_step_seconds_are_capped_in_development(
    client_with: Any, auth_header: Headers, engine: sa.Engine
) -> None:
    client = client_with(simulate_max_step_seconds=30.0)
    response = client.post(
        PROJECTS, json={"project_name": "x", "simulate": {"step_seconds": 31}}, headers=auth_header()
    )
    problem = assert_problem(response, 422)
    assert "simulate.step_seconds" in problem["errors"] and "30" in problem["detail"]
    assert count(engine, "SELECT count(*) FROM tasks") == 0
    create(client, auth_header(), project_name="x", simulate={"step_seconds": 30})
