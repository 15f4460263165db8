"""Tasks, their step rows and their progress history."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from common.db import Prepared
from common.pipeline import ALL_STEPS, PHASES, STEPS, StepDef

TERMINAL_SQL = "('completed', 'failed', 'cancelled')"
# The active phases in pipeline order: array_position() on it compares two phases.
PHASE_ORDER_SQL = "ARRAY[" + ", ".join(f"'{phase}'" for phase in PHASES) + "]"
# The same order as a text[] parameter of the step functions, written once: pg8000 escapes a
# Python list character by character on every call (about 0.04 ms of a step's 0.6 ms of Python).
PHASE_ORDER_PARAM = "{" + ",".join(f'"{phase}"' for phase in PHASES) + "}"
# What a progress row can carry besides its phase, percent and message (the task keeps the latest).
PROGRESS_FACTS = ("org_url", "repo_url", "deployment_url", "gcp_project_id")
PROGRESS_FACTS_SQL = ", ".join(PROGRESS_FACTS)


def iso_sql(column: str) -> str:
    """SQL that renders a timestamptz as ISO 8601 UTC with a Z suffix (NULL stays NULL)."""
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


# The task with its steps, in one statement: one round trip for every read of a task.
TASK_COLUMNS = f"""
    t.id, t.user_id, t.type, t.project_name, t.project_description, t.mode, t.status,
    t.progress_percent, t.message, t.current_step, t.org_url, t.repo_url, t.deployment_url,
    t.gcp_project_id, t.error_message, t.version, t.payload, t.priority, t.result,
    {iso_sql("t.created_at")} AS created_at, {iso_sql("t.updated_at")} AS updated_at,
    {iso_sql("t.completed_at")} AS completed_at, {iso_sql("t.failed_at")} AS failed_at,
    {iso_sql("t.cancelled_at")} AS cancelled_at,
    (SELECT coalesce(json_agg(json_build_object(
            'name', s.name, 'status', s.status, 'attempts', s.attempts,
            'started_at', {iso_sql("s.started_at")}, 'finished_at', {iso_sql("s.finished_at")},
            'error', s.error, 'result', s.result) ORDER BY s.position), '[]'::json)
       FROM task_steps s WHERE s.task_id = t.id) AS steps
"""

# Prepared (common.db.prepared): a task read is the hottest read there is, and planning its
# steps subquery cost more than running it.
_GET_TASK = f"SELECT {TASK_COLUMNS} FROM tasks t WHERE t.id = :task_id AND t.user_id = :user_id"

_INSERT_TASK = sa.text(
    """
    INSERT INTO tasks (id, user_id, user_email, type, status, project_name, project_description, mode,
                       message, progress_percent, current_step, payload, priority,
                       org_url, repo_url, deployment_url, gcp_project_id, project_id)
    VALUES (:id, :user_id, :user_email, :type, 'initializing', :project_name,
            :project_description, :mode, :message, 0, :current_step, CAST(:payload AS jsonb), :priority,
            :org_url, :repo_url, :deployment_url, :gcp_project_id, :project_id)
    """
)

_INSERT_STEPS = sa.text(
    """
    INSERT INTO task_steps (task_id, name, position, max_attempts, due_at)
    SELECT :task_id, s.name, s.position, s.max_attempts,
           CASE WHEN s.position = 0 THEN now() END
    FROM json_to_recordset(CAST(:steps AS json)) AS s(name text, position int, max_attempts int)
    """
)

INSERT_PROGRESS = sa.text(
    f"""
    INSERT INTO task_progress (task_id, update_id, status, message, progress_percent, {PROGRESS_FACTS_SQL})
    VALUES (:task_id, :update_id, :status, :message, :progress_percent,
            {", ".join(f":{fact}" for fact in PROGRESS_FACTS)})
    ON CONFLICT (task_id, update_id) DO NOTHING
    RETURNING id
    """
)

_PROGRESS = sa.text(
    f"""
    SELECT p.status, p.message, p.progress_percent, p.org_url, p.repo_url, p.deployment_url,
           {iso_sql("p.timestamp")} AS timestamp
    FROM task_progress p JOIN tasks t ON t.id = p.task_id
    WHERE p.task_id = :task_id AND t.user_id = :user_id
    ORDER BY p.id
    """
)

_TASK_EXISTS = sa.text("SELECT 1 FROM tasks WHERE id = :task_id AND user_id = :user_id")

STATUS_FILTERS = {
    "active": f"t.status NOT IN {TERMINAL_SQL}",
    "completed": "t.status = 'completed'",
    "failed": "t.status = 'failed'",
    "cancelled": "t.status = 'cancelled'",
}


def get_task(run: Prepared, task_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, Any] | None:
    """The user's task with its steps, or None (also when it belongs to someone else)."""
    rows = run(_GET_TASK, {"task_id": task_id, "user_id": user_id})
    return rows[0] if rows else None


def insert_task(
    conn: sa.Connection,
    *,
    task_id: uuid.UUID,
    user_id: uuid.UUID,
    user_email: str,
    project_name: str,
    project_description: str,
    mode: str,
    payload: dict[str, Any],
    message: str,
    steps: Sequence[StepDef] = STEPS,
    task_type: str = "create_project",
    priority: str = "normal",
    facts: dict[str, Any] | None = None,
) -> None:
    """Write a new task, its step rows (the first one due now) and its first progress row.

    ``facts`` (org_url, repo_url, ... of the project a task works on) start on the task, where its
    steps read them."""
    facts = facts or {}
    conn.execute(
        _INSERT_TASK,
        {
            "type": task_type,
            "priority": priority,
            **{k: facts.get(k) for k in ("org_url", "repo_url", "deployment_url", "gcp_project_id", "project_id")},
            "id": task_id,
            "user_id": user_id,
            "user_email": user_email,
            "project_name": project_name,
            "project_description": project_description,
            "mode": mode,
            "message": message,
            "current_step": steps[0].name,
            "payload": json.dumps(payload),
        },
    )
    step_rows = [{"name": s.name, "position": i, "max_attempts": s.max_attempts} for i, s in enumerate(steps)]
    conn.execute(_INSERT_STEPS, {"task_id": task_id, "steps": json.dumps(step_rows)})
    insert_progress(conn, task_id, update_id="initializing", status="initializing", message=message, percent=0)


def insert_progress(
    conn: sa.Connection,
    task_id: uuid.UUID,
    *,
    update_id: str | None,
    status: str,
    message: str,
    percent: int,
    urls: dict[str, str | None] | None = None,
) -> bool:
    """Append a progress row; False when that update_id was already stored for the task."""
    urls = urls or {}
    row = conn.execute(
        INSERT_PROGRESS,
        {
            "task_id": task_id,
            "update_id": update_id,
            "status": status,
            "message": message,
            "progress_percent": percent,
            **{fact: urls.get(fact) for fact in PROGRESS_FACTS},
        },
    ).first()
    return row is not None


def list_progress(conn: sa.Connection, task_id: uuid.UUID, user_id: uuid.UUID) -> list[dict[str, Any]] | None:
    """The task's progress rows oldest first, or None when the user has no such task."""
    rows = [dict(r) for r in conn.execute(_PROGRESS, {"task_id": task_id, "user_id": user_id}).mappings()]
    if rows:
        return rows
    exists = conn.execute(_TASK_EXISTS, {"task_id": task_id, "user_id": user_id}).first()
    return [] if exists else None


def list_tasks(
    conn: sa.Connection,
    user_id: uuid.UUID,
    *,
    status: str | None,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
    task_type: str | None = None,
    priority: str | None = None,
) -> list[dict[str, Any]]:
    """Up to ``limit`` of the user's tasks newest first, after the keyset position ``after``."""
    clauses = ["t.user_id = :user_id"]
    params: dict[str, Any] = {"user_id": user_id, "limit": limit}
    if status:
        clauses.append(STATUS_FILTERS[status])
    if task_type:
        clauses.append("t.type = :task_type")
        params["task_type"] = task_type
    if priority:
        clauses.append("t.priority = :priority")
        params["priority"] = priority
    if after:
        clauses.append("(t.created_at, t.id) < (:after_created, :after_id)")
        params.update(after_created=after[0], after_id=after[1])
    sql = f"""
        SELECT {TASK_COLUMNS}, t.created_at AS created_at_raw FROM tasks t
        WHERE {" AND ".join(clauses)}
        ORDER BY t.created_at DESC, t.id DESC LIMIT :limit
    """
    return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]


def lock_task(conn: sa.Connection, task_id: uuid.UUID, user_id: uuid.UUID | None = None) -> dict[str, Any] | None:
    """Lock the task row (the one mutex for everything about a task) and return its state."""
    sql = "SELECT id, user_id, status, progress_percent, current_step, payload FROM tasks WHERE id = :task_id"
    params: dict[str, Any] = {"task_id": task_id}
    if user_id is not None:
        sql += " AND user_id = :user_id"
        params["user_id"] = user_id
    row = conn.execute(sa.text(sql + " FOR UPDATE"), params).mappings().first()
    return dict(row) if row else None


def cancel(conn: sa.Connection, task_id: uuid.UUID, message: str) -> None:
    """Mark a locked, active task cancelled, skip the steps that have not started, and stop a step
    that waits for outside work: nothing waits for a cancelled task (its check may never come: the
    reaper leaves ended tasks alone). A running step is stopped by its heartbeat."""
    conn.execute(
        sa.text(
            """
            UPDATE tasks SET status = 'cancelled', cancelled_at = now(), updated_at = now(),
                   message = :message, version = version + 1
            WHERE id = :task_id
            """
        ),
        {"task_id": task_id, "message": message},
    )
    conn.execute(
        sa.text(
            """
            UPDATE task_steps SET status = 'skipped', due_at = NULL, claim_id = NULL, lease_expires_at = NULL,
                   finished_at = CASE WHEN status = 'waiting' THEN now() ELSE finished_at END,
                   error = CASE WHEN status = 'waiting' THEN :stopped ELSE error END
            WHERE task_id = :task_id AND status IN ('pending', 'waiting')
            """
        ),
        {"task_id": task_id, "stopped": "the task was cancelled while the step waited for outside work"},
    )


_METERING_STEPS = ", ".join(f"('{s.name}', {s.ai_operations})" for s in ALL_STEPS if s.ai_operations)
_IN_FLIGHT_AI_OPERATIONS = sa.text(
    f"""
    SELECT coalesce(sum(e.ops), 0) FROM tasks t
    JOIN task_steps s ON s.task_id = t.id AND s.status IN ('pending', 'running', 'waiting')
    JOIN (VALUES {_METERING_STEPS}) AS e(name, ops) ON e.name = s.name
    WHERE t.user_id = :user_id AND t.status NOT IN {TERMINAL_SQL}
    """
)


def in_flight_ai_operations(conn: sa.Connection, user_id: uuid.UUID) -> int:
    """AI operations the user's active pipelines are still expected to meter (their steps not yet run)."""
    reserved: int = conn.execute(_IN_FLIGHT_AI_OPERATIONS, {"user_id": user_id}).scalar_one()
    return reserved


_TASK_BY_ID = sa.text(f"SELECT {TASK_COLUMNS} FROM tasks t WHERE t.id = :task_id")


def task_by_id(conn: sa.Connection, task_id: uuid.UUID) -> dict[str, Any] | None:
    """A task whoever owns it: for a worker's outcome callback, whose token is bound to the task."""
    row = conn.execute(_TASK_BY_ID, {"task_id": task_id}).mappings().first()
    return dict(row) if row is not None else None
