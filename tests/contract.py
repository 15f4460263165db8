"""What API.md promises, written once for the tests that check it."""

from __future__ import annotations

import json
from typing import Any

TASK_FIELDS = frozenset(
    {
        "task_id",
        "type",
        "project_name",
        "project_description",
        "mode",
        "status",
        "progress_percent",
        "message",
        "current_step",
        "org_url",
        "repo_url",
        "deployment_url",
        "gcp_project_id",
        "error_message",
        "created_at",
        "updated_at",
        "completed_at",
        "failed_at",
        "cancelled_at",
        "steps",
        # Generic tasks (API.md, second part).
        "priority",
        "payload",
        "result",
        "error",
    }
)
STEP_FIELDS = frozenset({"name", "status", "attempts", "started_at", "finished_at", "error", "result"})


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status; returns its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail"} <= set(body)
    return body


def padded_body(total_bytes: int) -> bytes:
    """A valid create-project body of exactly ``total_bytes`` (the description pads it)."""
    empty = json.dumps({"project_name": "x", "project_description": ""}).encode()
    return json.dumps({"project_name": "x", "project_description": "d" * (total_bytes - len(empty))}).encode()
