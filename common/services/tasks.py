"""Reading, listing and cancelling a user's tasks."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from common.db import on
from common.errors import BadRequest, Conflict, NotFound
from common.models import ProgressEntry, ProgressList, Task, TaskList
from common.queries import tasks as q
from common.services.users import User

if TYPE_CHECKING:
    from common.runtime import Runtime

TERMINAL = ("completed", "failed", "cancelled")


def to_task(row: dict[str, Any]) -> Task:
    """The API's task object from a row of queries.tasks.TASK_COLUMNS."""
    steps = row["steps"]
    if isinstance(steps, str):
        steps = json.loads(steps)
    # One validation of the whole object, its steps included (pydantic-core), not one per step.
    return Task.model_validate(
        {
            "task_id": str(row["id"]),
            "type": row["type"],
            "project_name": row["project_name"],
            "project_description": row["project_description"],
            "mode": row["mode"],
            "status": row["status"],
            "progress_percent": row["progress_percent"],
            "message": row["message"],
            "current_step": row["current_step"],
            "org_url": row["org_url"],
            "repo_url": row["repo_url"],
            "deployment_url": row["deployment_url"],
            "gcp_project_id": row["gcp_project_id"],
            "error_message": row["error_message"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "completed_at": row["completed_at"],
            "failed_at": row["failed_at"],
            "cancelled_at": row["cancelled_at"],
            "steps": steps,
            "priority": row.get("priority") or "normal",
            "payload": _payload(row),
            "result": row.get("result") if row["status"] == "completed" else None,
            "error": row["error_message"],
        }
    )


def _payload(row: dict[str, Any]) -> dict[str, Any]:
    """The payload as given; a create_project task's name, description and mode live in columns."""
    payload: dict[str, Any] = dict(row.get("payload") or {})
    if row["type"] == "create_project":
        fields = {"project_name": row["project_name"], "project_description": row["project_description"]}
        return {**fields, "mode": row["mode"], **payload}
    return payload


@dataclass(frozen=True)
class TaskVersion:
    """A task as read, and its version tag (a strong ETag: the task id and its version, which
    every change bumps)."""

    task: Task
    etag: str


def _etag(row: dict[str, Any]) -> str:
    return f'"{row["id"]}-{row["version"]}"'


def read_task(conn: sa.Connection, task_id: uuid.UUID, user: User) -> dict[str, Any]:
    """The user's task row, read inside ``conn``'s transaction (404 as get_task)."""
    return _found(q.get_task(on(conn), task_id, user.id))


def _found(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        raise NotFound("no task with that id")
    return row


def get_task(rt: Runtime, task_id: uuid.UUID, user: User) -> TaskVersion:
    """The user's task (404 for unknown ids and other users' tasks alike)."""
    row = _found(q.get_task(rt.db.prepared, task_id, user.id))
    return TaskVersion(task=to_task(row), etag=_etag(row))


def get_progress(rt: Runtime, task_id: uuid.UUID, user: User) -> ProgressList:
    rows = rt.db.statement(lambda conn: q.list_progress(conn, task_id, user.id))
    if rows is None:
        raise NotFound("no task with that id")
    return ProgressList(task_id=str(task_id), progress=[ProgressEntry(**r) for r in rows])


def _cursor_mac(rt: Runtime, payload: bytes, user: User) -> str:
    # Bound to the user: a cursor copied to another account, or edited, is refused.
    key = rt.settings.step_signing_secret.encode() + b"|cursor|" + user.id.bytes
    return hmac.new(key, payload, hashlib.sha256).hexdigest()[:32]


def encode_cursor(rt: Runtime, created_at: datetime, task_id: uuid.UUID, user: User) -> str:
    payload = json.dumps([created_at.isoformat(), str(task_id)]).encode()
    token = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    return f"{token}.{_cursor_mac(rt, payload, user)}"


def decode_cursor(rt: Runtime, cursor: str, user: User) -> tuple[datetime, uuid.UUID]:
    try:
        token, _, mac = cursor.partition(".")
        payload = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        if not hmac.compare_digest(mac, _cursor_mac(rt, payload, user)):
            raise ValueError("bad signature")
        created, task_id = json.loads(payload)
        return datetime.fromisoformat(created), uuid.UUID(task_id)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise BadRequest("the cursor is not valid; start again without it") from None


def list_tasks(
    rt: Runtime,
    user: User,
    *,
    status: str | None,
    limit: int,
    cursor: str | None,
    task_type: str | None = None,
    priority: str | None = None,
) -> TaskList:
    after = decode_cursor(rt, cursor, user) if cursor else None
    rows = rt.db.statement(
        lambda conn: q.list_tasks(
            conn, user.id, status=status, limit=limit + 1, after=after, task_type=task_type, priority=priority
        )
    )
    page, more = rows[:limit], len(rows) > limit
    next_cursor = encode_cursor(rt, page[-1]["created_at_raw"], page[-1]["id"], user) if more else None
    return TaskList(tasks=[to_task(r) for r in page], next_cursor=next_cursor)


def cancel_task(rt: Runtime, task_id: uuid.UUID, user: User) -> Task:
    """Cancel an active task; the pipeline stops at its next step boundary. 409 when terminal."""

    def work(conn: sa.Connection) -> dict[str, Any]:
        locked = q.lock_task(conn, task_id, user.id)
        if locked is None:
            raise NotFound("no task with that id")
        if locked["status"] in TERMINAL:
            raise Conflict(f"the task is already {locked['status']}")
        message = "Cancelled by the user"
        q.cancel(conn, task_id, message)
        q.insert_progress(
            conn,
            task_id,
            update_id="cancelled",
            status="cancelled",
            message=message,
            percent=locked["progress_percent"],
        )
        return read_task(conn, task_id, user)

    return to_task(rt.db.transaction(work))
