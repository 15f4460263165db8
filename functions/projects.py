"""POST /api/v1/projects — start the create-project pipeline."""

from __future__ import annotations

from common.errors import ValidationFailed
from common.http import Call, Reply
from common.models import CreateProject
from common.services import projects

MAX_IDEMPOTENCY_KEY = 255


def idempotency_key(call: Call) -> str | None:
    """The request's Idempotency-Key header, checked (422 when malformed), or None."""
    key = call.request.headers.get("Idempotency-Key")
    if key is not None and not (1 <= len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
        raise ValidationFailed(
            "the Idempotency-Key header is not valid", errors={"Idempotency-Key": "1-255 printable characters"}
        )
    return key


def create_project(call: Call) -> Reply:
    body = call.json(CreateProject)
    created = projects.create_project(call.rt, call.user, body, idempotency_key(call))
    return Reply(created.task, 202, {"Location": f"/api/v1/tasks/{created.task.task_id}"})
