"""Rows for tests, written straight into the database with explicit values (timestamps, statuses,
usage): one factory for users, tasks and their steps, so a schema change is followed in one place."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import sqlalchemy as sa

from common import pipeline
from common.services.users import User


def add_user(engine: sa.Engine, email: str = "alice@example.test") -> User:
    with engine.begin() as conn:
        user_id = conn.execute(
            sa.text(
                "INSERT INTO users (email) VALUES (:e) ON CONFLICT (email) DO UPDATE SET email = excluded.email"
                " RETURNING id"
            ),
            {"e": email},
        ).scalar_one()
    return User(id=user_id, email=email)


def add_task(
    engine: sa.Engine,
    user: User,
    *,
    status: str = "completed",
    created: datetime,
    completed: datetime | None = None,
    failed: datetime | None = None,
    cancelled: datetime | None = None,
    updated: datetime | None = None,
    current_step: str | None = None,
) -> uuid.UUID:
    task_id = uuid.uuid4()
    moments = [m for m in (created, completed, failed, cancelled) if m is not None]
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                """
                INSERT INTO tasks (id, user_id, user_email, status, project_name, progress_percent, current_step,
                                   created_at, updated_at, completed_at, failed_at, cancelled_at)
                VALUES (:id, :user_id, :email, :status, :name, :percent, :current_step,
                        :created, :updated, :completed, :failed, :cancelled)
                """
            ),
            {
                "id": task_id,
                "user_id": user.id,
                "email": user.email,
                "status": status,
                "name": f"project {task_id.hex[:6]}",
                "percent": 100 if status == "completed" else 40,
                "current_step": current_step,
                "created": created,
                "updated": updated or max(moments),
                "completed": completed,
                "failed": failed,
                "cancelled": cancelled,
            },
        )
    return task_id


def add_step(
    engine: sa.Engine,
    task_id: uuid.UUID,
    name: str,
    status: str,
    *,
    started: datetime | None,
    finished: datetime | None = None,
    usage: dict[str, int] | None = None,
) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                """
                INSERT INTO task_steps (task_id, name, position, status, attempts, max_attempts, started_at,
                                        finished_at, result)
                VALUES (:task_id, :name, :position, :status, 1, :max_attempts, :started, :finished,
                        CAST(:result AS jsonb))
                """
            ),
            {
                "task_id": task_id,
                "name": name,
                "position": pipeline.POSITION[name],
                "status": status,
                "max_attempts": pipeline.BY_NAME[name].max_attempts,
                "started": started,
                "finished": finished,
                "result": json.dumps({"usage": usage or {}}),
            },
        )
