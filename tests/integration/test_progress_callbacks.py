"""POST /api/v1/tasks/{task_id}/progress: progress callbacks from outside workers, on a real DB."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest
import sqlalchemy as sa

from common import pipeline
from common.auth import CALLBACK_AUDIENCE, SIGNATURE_HEADER, sign_body
from common.queue import step_body
from tests.conftest import TEST_JWT_SECRET, TEST_STEP_SECRET, callback_token


def create(client: Any, headers: dict[str, str], name: str = "Callback App") -> dict[str, Any]:
    response = client.post("/api/v1/projects", json={"project_name": name}, headers=headers)
    assert response.status_code == 202, response.get_json()
    task: dict[str, Any] = response.get_json()
    return task


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(client: Any, task_id: str, body: dict[str, Any], token: str | None = None) -> Any:
    token = token if token is not None else callback_token(task_id)
    return client.post(f"/api/v1/tasks/{task_id}/progress", json=body, headers=bearer(token))


def progress_rows(engine: sa.Engine, task_id: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT * FROM task_progress WHERE task_id = :t ORDER BY id"), {"t": task_id}
        ).mappings()
        return [dict(r) for r in rows]


def run_to_completion(client: Any, task_id: str) -> None:
    run_to_completion_of(client, task_id, *pipeline.STEP_NAMES)


def run_to_completion_of(client: Any, task_id: str, *steps: str) -> None:
    """Deliver these steps once each, as the queue would."""
    for step in steps:
        body = step_body(task_id, step, 0)
        response = client.post(
            "/internal/steps",
            data=body,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign_body(body, TEST_STEP_SECRET)},
        )
        assert response.status_code == 200


def test_a_callback_updates_the_task_and_appends_one_row(client: Any, auth_header: Any, engine: sa.Engine) -> None:
    task = create(client, auth_header())
    body = {
        "update_id": "worker-1",
        "message": "Forking the template",
        "progress_percent": 30,
        "org_url": "https://github.com/acme",
        "repo_url": "https://github.com/acme/callback-app",
        "gcp_project_id": "callback-app-123",
    }
    response = post(client, task["task_id"], body)
    assert response.status_code == 200, response.get_json()
    returned = response.get_json()
    assert returned["task_id"] == task["task_id"]
    assert returned["progress_percent"] == 30
    assert returned["message"] == "Forking the template"
    assert returned["org_url"] == "https://github.com/acme"
    assert returned["repo_url"] == "https://github.com/acme/callback-app"
    assert returned["gcp_project_id"] == "callback-app-123"
    # What the owner reads afterwards is what the callback answered.
    read = client.get(f"/api/v1/tasks/{task['task_id']}", headers=auth_header()).get_json()
    assert {k: read[k] for k in ("progress_percent", "message", "org_url", "repo_url")} == {
        k: returned[k] for k in ("progress_percent", "message", "org_url", "repo_url")
    }
    rows = progress_rows(engine, task["task_id"])
    assert [r["update_id"] for r in rows] == ["initializing", "worker-1"]
    assert rows[-1]["progress_percent"] == 30 and rows[-1]["repo_url"] == "https://github.com/acme/callback-app"
    history = client.get(f"/api/v1/tasks/{task['task_id']}/progress", headers=auth_header()).get_json()
    assert [p["message"] for p in history["progress"]] == [pipeline.INITIAL_MESSAGE, "Forking the template"]


def test_a_message_alone_is_enough(client: Any, auth_header: Any, engine: sa.Engine) -> None:
    task = create(client, auth_header())
    response = post(client, task["task_id"], {"message": "still working"})
    assert response.status_code == 200
    assert response.get_json()["progress_percent"] == 0
    # Without an update_id every callback is its own row.
    assert post(client, task["task_id"], {"message": "still working"}).status_code == 200
    assert [r["message"] for r in progress_rows(engine, task["task_id"])][1:] == ["still working"] * 2


def test_a_repeated_update_id_is_stored_once_and_answered_again(
    client: Any, auth_header: Any, engine: sa.Engine
) -> None:
    task = create(client, auth_header())
    first = post(client, task["task_id"], {"update_id": "u-1", "message": "half way", "progress_percent": 50})
    again = post(client, task["task_id"], {"update_id": "u-1", "message": "half way", "progress_percent": 50})
    # A different body under the same id is the same update: it changes nothing.
    changed = post(client, task["task_id"], {"update_id": "u-1", "message": "something else", "progress_percent": 70})
    assert first.status_code == again.status_code == changed.status_code == 200
    assert again.get_json()["progress_percent"] == 50
    assert changed.get_json()["progress_percent"] == 50
    assert changed.get_json()["message"] == "half way"
    rows = progress_rows(engine, task["task_id"])
    assert [r["update_id"] for r in rows].count("u-1") == 1
    # The same id for another task is another update.
    other = create(client, auth_header(), "Other App")
    assert (
        post(client, other["task_id"], {"update_id": "u-1", "message": "x", "progress_percent": 5}).status_code == 200
    )
    assert [r["update_id"] for r in progress_rows(engine, other["task_id"])] == ["initializing", "u-1"]


def test_a_lower_percentage_does_not_lower_the_task(client: Any, auth_header: Any, engine: sa.Engine) -> None:
    task = create(client, auth_header())
    assert post(client, task["task_id"], {"message": "a", "progress_percent": 60}).get_json()["progress_percent"] == 60
    lower = post(client, task["task_id"], {"message": "b", "progress_percent": 20})
    assert lower.status_code == 200
    assert lower.get_json()["progress_percent"] == 60
    assert lower.get_json()["message"] == "b"
    read = client.get(f"/api/v1/tasks/{task['task_id']}", headers=auth_header()).get_json()
    assert read["progress_percent"] == 60
    # The history a frontend plots never goes down either.
    history = client.get(f"/api/v1/tasks/{task['task_id']}/progress", headers=auth_header()).get_json()["progress"]
    assert [p["progress_percent"] for p in history] == [0, 60, 60]


def test_a_percentage_must_be_a_json_integer(client: Any, auth_header: Any, engine: sa.Engine) -> None:
    task = create(client, auth_header())
    for value in ("50", True, 50.5):
        response = post(client, task["task_id"], {"message": "m", "progress_percent": value})
        assert response.status_code == 422, value
        assert "progress_percent" in response.get_json()["errors"]
    assert len(progress_rows(engine, task["task_id"])) == 1


def test_a_nul_character_is_422_and_stores_nothing(client: Any, auth_header: Any, engine: sa.Engine) -> None:
    task = create(client, auth_header())
    for field, body in {
        "message": {"message": "nul\x00"},
        "update_id": {"update_id": "a\x00b", "message": "x"},
        "repo_url": {"message": "x", "repo_url": "https://github.com/a\x00"},
    }.items():
        response = post(client, task["task_id"], body)
        assert response.status_code == 422, body
        assert field in response.get_json()["errors"], response.get_json()
    assert len(progress_rows(engine, task["task_id"])) == 1


def test_the_task_id_may_be_spelt_in_capitals_or_without_dashes(client: Any, auth_header: Any) -> None:
    task = create(client, auth_header())
    token = callback_token(task["task_id"])
    for spelling in (task["task_id"].upper(), task["task_id"].replace("-", "")):
        response = post(client, spelling, {"message": spelling}, token=token)
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["task_id"] == task["task_id"]


def test_the_phase_moves_forward_never_back(client: Any, auth_header: Any) -> None:
    task = create(client, auth_header())
    forward = post(client, task["task_id"], {"message": "m", "status": "forking_template"})
    assert forward.status_code == 200 and forward.get_json()["status"] == "forking_template"
    back = post(client, task["task_id"], {"message": "m", "status": "creating_org"})
    assert back.status_code == 200 and back.get_json()["status"] == "forking_template"
    # Nor does the pipeline move it back when it claims an earlier step than the worker reported.
    run_to_completion_of(client, task["task_id"], "creating_org")
    read = client.get(f"/api/v1/tasks/{task['task_id']}", headers=auth_header()).get_json()
    assert read["status"] == "forking_template" and read["current_step"] == "forking_template"
    history = client.get(f"/api/v1/tasks/{task['task_id']}/progress", headers=auth_header()).get_json()["progress"]
    assert [p["status"] for p in history] == ["initializing"] + ["forking_template"] * 3


@pytest.mark.parametrize("how", ["completed", "cancelled"])
def test_a_callback_for_a_terminal_task_is_409(client: Any, auth_header: Any, engine: sa.Engine, how: str) -> None:
    task = create(client, auth_header())
    if how == "completed":
        run_to_completion(client, task["task_id"])
    else:
        assert client.post(f"/api/v1/tasks/{task['task_id']}/cancel", headers=auth_header()).status_code == 200
    before = progress_rows(engine, task["task_id"])
    response = post(client, task["task_id"], {"update_id": "late", "message": "late news", "progress_percent": 10})
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    assert progress_rows(engine, task["task_id"]) == before
    read = client.get(f"/api/v1/tasks/{task['task_id']}", headers=auth_header()).get_json()
    assert read["status"] == how


def test_a_user_token_is_refused(client: Any, auth_header: Any, engine: sa.Engine) -> None:
    task = create(client, auth_header())
    response = client.post(f"/api/v1/tasks/{task['task_id']}/progress", json={"message": "x"}, headers=auth_header())
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    # Even a user token whose subject is the task id, signed with the user key.
    now = int(time.time())
    lookalike = jwt.encode(
        {"sub": task["task_id"], "aud": CALLBACK_AUDIENCE, "email": "alice@example.test", "exp": now + 60},
        TEST_JWT_SECRET,
        algorithm="HS256",
    )
    assert post(client, task["task_id"], {"message": "x"}, token=lookalike).status_code == 401
    assert len(progress_rows(engine, task["task_id"])) == 1


def test_a_token_for_another_task_is_refused(client: Any, auth_header: Any, engine: sa.Engine) -> None:
    mine = create(client, auth_header())
    other = create(client, auth_header(), "Other App")
    response = post(client, mine["task_id"], {"message": "x"}, token=callback_token(other["task_id"]))
    assert response.status_code == 401
    assert len(progress_rows(engine, mine["task_id"])) == 1


def test_missing_expired_and_misaddressed_tokens_are_refused(client: Any, auth_header: Any) -> None:
    task = create(client, auth_header())
    url = f"/api/v1/tasks/{task['task_id']}/progress"
    assert client.post(url, json={"message": "x"}).status_code == 401
    expired = callback_token(task["task_id"], ttl_seconds=-300)
    assert post(client, task["task_id"], {"message": "x"}, token=expired).status_code == 401
    now = int(time.time())
    other_audience = jwt.encode(
        {"sub": task["task_id"], "aud": "somebody-else", "exp": now + 60}, TEST_STEP_SECRET, algorithm="HS256"
    )
    assert post(client, task["task_id"], {"message": "x"}, token=other_audience).status_code == 401
    no_expiry = jwt.encode({"sub": task["task_id"], "aud": CALLBACK_AUDIENCE}, TEST_STEP_SECRET, algorithm="HS256")
    assert post(client, task["task_id"], {"message": "x"}, token=no_expiry).status_code == 401


def test_a_callback_token_cannot_read_the_task_as_a_user(client: Any, auth_header: Any) -> None:
    task = create(client, auth_header())
    response = client.get(f"/api/v1/tasks/{task['task_id']}", headers=bearer(callback_token(task["task_id"])))
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": "x", "progress_percent": 101}, "progress_percent"),
        ({"message": "x", "progress_percent": -1}, "progress_percent"),
        ({"message": "x", "progress_percent": "half"}, "progress_percent"),
        ({"message": "x", "repo_url": "ftp://example.com/repo"}, "repo_url"),
        ({"message": "x", "org_url": "javascript:alert(1)"}, "org_url"),
        ({"message": "x", "deployment_url": "example.com"}, "deployment_url"),
        ({"message": "x", "status": "completed"}, "status"),
        ({"message": "x", "status": "bogus"}, "status"),
        ({"message": "x", "gcp_project_id": "Not A Project"}, "gcp_project_id"),
        ({"message": "x", "update_id": ""}, "update_id"),
        ({"progress_percent": 10}, "message"),
        ({"message": "x", "surprise": True}, "surprise"),
    ],
)
def test_invalid_fields_are_422(
    client: Any, auth_header: Any, engine: sa.Engine, body: dict[str, Any], field: str
) -> None:
    task = create(client, auth_header())
    response = post(client, task["task_id"], body)
    assert response.status_code == 422
    problem = response.get_json()
    assert response.mimetype == "application/problem+json"
    assert field in problem["errors"], problem
    assert len(progress_rows(engine, task["task_id"])) == 1


def test_an_unknown_task_with_a_token_for_it_is_404(client: Any) -> None:
    task_id = str(uuid.uuid4())
    response = post(client, task_id, {"message": "x", "progress_percent": 10})
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
