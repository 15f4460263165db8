"""The HTTP edge as any client meets it: unknown routes, wrong methods, CORS, preflights, error
bodies that leak nothing, and an unreachable database."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from common import db
from common.runtime import Database, Runtime
from dev.gateway import create_app
from functions.routes import ROUTES
from tests.conftest import DEAD_DATABASE, TEST_JWT_SECRET, TEST_STEP_SECRET, with_settings
from tests.contract import assert_problem

ORIGIN = "https://app.example.test"  # CORS_ORIGINS of the suite
EVIL = "https://evil.example.test"
TASKS = "/api/v1/tasks"
PROJECTS = "/api/v1/projects"
# What must never reach a client: traces, SQL, driver and framework names, secrets, file paths.
LEAKS = (
    "Traceback",
    'File "',
    ".py",
    "sqlalchemy",
    "pg8000",
    "psycopg",
    "postgres",
    "unix_sock",
    "SELECT ",
    "INSERT ",
    "UPDATE ",
    "FROM ",
    "werkzeug",
    "flask",
    TEST_JWT_SECRET,
    TEST_STEP_SECRET,
)

Headers = Callable[..., dict[str, str]]


def assert_no_leak(response: Any) -> None:
    text = response.get_data(as_text=True)
    found = [leak for leak in LEAKS if leak.lower() in text.lower()]
    assert found == [], text
    for name, value in response.headers.items():
        assert not any(leak.lower() in value.lower() for leak in LEAKS), (name, value)


def _served() -> dict[str, set[str]]:
    paths: dict[str, set[str]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, set()).add(route.method)
    return paths


def _concrete(path: str) -> str:
    return path.replace("{task_id}", str(uuid.uuid4()))


# --- routing ------------------------------------------------------------------------------------------


def test_unknown_routes_are_404_problems(client: Any, auth_header: Headers) -> None:
    paths = (
        "/index.html",
        "/assets/missing.js",
        "/api",
        "/api/v2/tasks",
        "/api/v1/projects/x",
        f"{TASKS}/",
        "/internal/steps/x",
        "/healthz/x",
    )
    for path in paths:
        for method in ("GET", "POST", "DELETE"):
            response = client.open(path, method=method, headers=auth_header())
            assert_problem(response, 404)
            assert "Allow" not in response.headers
    assert_problem(client.options("/api/v2/tasks", headers={"Origin": ORIGIN}), 404)


def test_wrong_methods_are_405_with_allow(client: Any, auth_header: Headers) -> None:
    wrong: list[Any] = []
    for path, methods in _served().items():
        expected = {*methods, "OPTIONS"}
        for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - methods:
            response = client.open(_concrete(path), method=method, headers=auth_header(), json={})
            allow = {m.strip() for m in response.headers.get("Allow", "").split(",") if m.strip()}
            if (
                response.status_code != 405
                or response.mimetype != "application/problem+json"
                or allow != expected
                or response.get_json()["status"] != 405
            ):
                wrong.append((method, path, response.status_code, allow))
    assert wrong == []


# --- CORS ------------------------------------------------------------------------------------------------


def test_allowed_origin_is_echoed_on_every_answer(client: Any, auth_header: Headers) -> None:
    answers = [
        client.get(TASKS, headers={**auth_header(), "Origin": ORIGIN}),  # 200
        client.get(TASKS, headers={"Origin": ORIGIN}),  # 401
        client.get("/nowhere", headers={"Origin": ORIGIN}),  # 404
        client.delete(TASKS, headers={"Origin": ORIGIN}),  # 405
        client.post(PROJECTS, json={}, headers={**auth_header(), "Origin": ORIGIN}),  # 422
        client.get("/healthz", headers={"Origin": ORIGIN}),
    ]
    assert [a.status_code for a in answers] == [200, 401, 404, 405, 422, 200]
    for answer in answers:
        assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "Origin" in answer.headers["Vary"]
        exposed = {h.strip() for h in answer.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"Location", "ETag", "Retry-After"} <= exposed


def test_other_origins_get_no_cors_grant(client: Any, auth_header: Headers) -> None:
    for origin in (EVIL, "null", f"{ORIGIN}.evil.test", "http://app.example.test", ORIGIN + ":8443", "*"):
        for response in (
            client.get(TASKS, headers={**auth_header(), "Origin": origin}),
            client.get(TASKS, headers={"Origin": origin}),
            client.options(PROJECTS, headers={"Origin": origin, "Access-Control-Request-Method": "POST"}),
        ):
            assert "Access-Control-Allow-Origin" not in response.headers, origin
            assert "Access-Control-Allow-Methods" not in response.headers, origin
            assert "Origin" in response.headers["Vary"]  # caches must not reuse a granted answer


def test_several_configured_origins_and_never_a_wildcard(client_with: Any, auth_header: Headers) -> None:
    client = client_with(cors_origins=("https://one.example.test", "https://two.example.test"))
    for origin in ("https://one.example.test", "https://two.example.test"):
        response = client.get(TASKS, headers={**auth_header(), "Origin": origin})
        assert response.headers["Access-Control-Allow-Origin"] == origin
    assert "Access-Control-Allow-Origin" not in client.get(TASKS, headers={"Origin": ORIGIN}).headers
    # No request at all makes the edge answer "*".
    for response in (client.get(TASKS, headers=auth_header()), client.options(TASKS)):
        assert response.headers.get("Access-Control-Allow-Origin") != "*"


def test_preflight_is_answered_without_auth(client: Any, engine: sa.Engine) -> None:
    for path, methods in _served().items():
        response = client.options(
            _concrete(path),
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": sorted(methods)[0],
                "Access-Control-Request-Headers": "authorization, content-type, idempotency-key, if-none-match",
            },
        )
        assert response.status_code == 204, (path, response.get_data(as_text=True))
        assert response.get_data() == b"" and "Content-Type" not in response.headers
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        allowed = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
        assert allowed == {*methods, "OPTIONS"}, path
        headers = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
        assert {"authorization", "content-type", "idempotency-key", "if-none-match"} <= headers
        assert int(response.headers["Access-Control-Max-Age"]) > 0
        assert "WWW-Authenticate" not in response.headers
    with engine.connect() as conn:  # a preflight is nobody: no user was created
        assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar_one() == 0


# --- what error bodies may say -----------------------------------------------------------------------------


def test_no_error_body_leaks_internals(client: Any, auth_header: Headers, engine: sa.Engine) -> None:
    task = client.post(PROJECTS, json={"project_name": "x"}, headers=auth_header()).get_json()
    client.post(f"{TASKS}/{task['task_id']}/cancel", headers=auth_header())
    answers = {
        400: client.post(PROJECTS, data=b'{"project_name": ', content_type="application/json", headers=auth_header()),
        401: client.get(TASKS, headers={"Authorization": "Bearer x.y.z"}),
        404: client.get(f"{TASKS}/{uuid.uuid4()}", headers=auth_header()),
        405: client.put(PROJECTS, headers=auth_header()),
        409: client.post(f"{TASKS}/{task['task_id']}/cancel", headers=auth_header()),
        413: client.post(PROJECTS, data=b"x" * 70_000, content_type="application/json", headers=auth_header()),
        415: client.post(PROJECTS, data=b"x", content_type="text/plain", headers=auth_header()),
        422: client.post(PROJECTS, json={"project_name": "\x00", "sql": "SELECT 1"}, headers=auth_header()),
    }

    # A real database error that is not a disconnect (here: a query on a table that is no longer
    # there) becomes a generic 500: the SQL and the driver's message stay in the log.
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE tasks RENAME TO no_such_table"))
    answers[500] = client.get(TASKS, headers=auth_header())
    for status, response in answers.items():
        body = assert_problem(response, status)
        assert set(body) <= {"type", "title", "status", "detail", "errors"}
        assert_no_leak(response)
    assert answers[500].get_json()["detail"] == "an unexpected error occurred"
    assert "tasks" not in answers[500].get_data(as_text=True)


class ExplodingDatabase(Database):
    """A database whose reads fail with an exception nobody expects, naming SQL and a secret."""

    def statement(self, work: Any) -> Any:
        raise RuntimeError(f"boom in SELECT * FROM users with {TEST_JWT_SECRET}")

    def prepared(self, sql: str, params: dict[str, Any]) -> Any:
        raise RuntimeError(f"boom in SELECT * FROM users with {TEST_JWT_SECRET}")


def test_an_unexpected_exception_is_a_generic_500(client: Any, runtime: Runtime, auth_header: Headers) -> None:
    client.get(TASKS, headers=auth_header())  # the user exists (its upsert is a statement too)
    exploding = dataclasses.replace(runtime, db=ExplodingDatabase(runtime.db.engine))
    exploding.users.remember("alice@example.test", runtime.users.get("alice@example.test"))  # type: ignore[arg-type]
    response = create_app(exploding).test_client().get(f"{TASKS}/{uuid.uuid4()}", headers=auth_header())
    assert assert_problem(response, 500)["detail"] == "an unexpected error occurred"
    assert_no_leak(response)
    assert "boom" not in response.get_data(as_text=True)


# --- the database is down ------------------------------------------------------------------------------------


def test_database_down_is_503_with_retry_after(runtime: Runtime, auth_header: Headers) -> None:
    down = with_settings(runtime, database_url=DEAD_DATABASE)
    client = create_app(dataclasses.replace(down, db=Database(db.create_engine(down.settings)))).test_client()
    answers = [
        client.get(TASKS, headers=auth_header()),
        client.get(f"{TASKS}/{uuid.uuid4()}", headers=auth_header()),
        client.post(PROJECTS, json={"project_name": "x"}, headers=auth_header()),
        client.post(f"{TASKS}/{uuid.uuid4()}/cancel", headers=auth_header()),
    ]
    for response in answers:
        assert_problem(response, 503)
        assert int(response.headers["Retry-After"]) > 0
        assert_no_leak(response)
    health = client.get("/healthz")
    assert health.status_code == 503
    assert int(health.headers["Retry-After"]) > 0
    assert health.get_json() == {"status": "degraded", "database": "unreachable"}
    assert_no_leak(health)
    # What needs no database still works: preflights, refusing bad tokens, unknown routes.
    assert client.options(PROJECTS, headers={"Origin": ORIGIN}).status_code == 204
    assert_problem(client.get(TASKS), 401)
    assert_problem(client.get("/nowhere"), 404)
    assert json.loads(client.get("/openapi.json").get_data())["openapi"].startswith("3.")


def test_healthz_when_the_database_is_up(client: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}
    assert "Retry-After" not in response.headers
