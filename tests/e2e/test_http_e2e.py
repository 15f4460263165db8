"""The HTTP edge through the real server (functions-framework's gunicorn and its request hooks),
where the test client cannot go: bodies past the limit, with and without a Content-Length."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from common.auth import CALLBACK_AUDIENCE
from dev.stack import LocalStack
from tests.conftest import TEST_STEP_SECRET
from tests.contract import padded_body
from tests.e2e.conftest import Api

LIMIT = 64 * 1024


def _post(stack: LocalStack, path: str, body: bytes, headers: dict[str, str], *, chunked: bool) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    try:
        headers = {"Content-Type": "application/json", **headers}
        if chunked:
            pieces: Iterator[bytes] = (body[i : i + 8192] for i in range(0, len(body), 8192))
            conn.request("POST", path, body=pieces, headers=headers, encode_chunked=True)
        else:
            conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        content_type = response.getheader("Content-Type", "")
        payload = response.read()
        return response.status, (content_type, json.loads(payload) if payload else None)
    finally:
        conn.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_413_problem_on_every_kind_of_route(
    stack: LocalStack, api: Api, chunked: bool
) -> None:
    task = api.create("edge@example.test", "Edge App")
    callback_token = jwt.encode(
        {"sub": task["task_id"], "aud": CALLBACK_AUDIENCE, "exp": int(time.time()) + 600}, TEST_STEP_SECRET, "HS256"
    )
    routes = {
        "/api/v1/projects": api.headers("edge@example.test"),
        f"/api/v1/tasks/{task['task_id']}/progress": {"Authorization": f"Bearer {callback_token}"},
        "/internal/steps": {},  # refused before the signature is even checked
    }
    for path, headers in routes.items():
        status, (content_type, problem) = _post(stack, path, padded_body(LIMIT + 1), headers, chunked=chunked)
        assert status == 413, (path, problem)
        assert content_type == "application/problem+json" and problem["status"] == 413, path
    projects = routes["/api/v1/projects"]
    if not chunked:
        # Far over the limit: the declared body is drained, unkept, and refused the same way. (A
        # chunked body has no declared end: it is cut off and the connection closed after the 413.)
        status, (_, problem) = _post(stack, "/api/v1/projects", b"x" * (8 << 20), projects, chunked=False)
        assert status == 413 and problem["status"] == 413
    # At the limit the size is fine: the description is then too long for its field.
    status, (_, problem) = _post(stack, "/api/v1/projects", padded_body(LIMIT), projects, chunked=chunked)
    assert status == 422 and "project_description" in problem["errors"]
    assert api.query("SELECT count(*) AS n FROM tasks WHERE project_name = 'x'") == [{"n": 0}]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/tasks/%0A", 404),
        ("GET", "/healthz%0A", 404),
        ("POST", "/api/v1/tasks/a%0Ab/progress", 404),
        ("TRACE", "/healthz", 405),
    ],
)
def test_what_the_url_rules_cannot_match_is_still_problem_json(
    stack: LocalStack, method: str, path: str, status: int
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        body = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == status and body["status"] == status
    assert response.getheader("Content-Type") == "application/problem+json"
