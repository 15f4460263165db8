"""Rows for the assistant's tests: tasks with named step runs (durations, attempts, errors), laid
out one after another from the task's creation. Users come from tests/factories.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from common.pipeline import POSITION
from common.services.users import User
from tests.factories import add_user

__all__ = ["StepRun", "add_task", "add_user", "failed", "ok"]


@dataclass(frozen=True)
class StepRun:
    name: str
    status: str  # succeeded | failed | running | pending
    seconds: float = 0.0
    attempts: int = 1
    error: str | None = None


def add_task(
    engine: sa.Engine,
    user: User,
    *,
    name: str,
    status: str,
    created: datetime,
    steps: list[StepRun] = (),  # type: ignore[assignment]
    task_type: str = "create_project",
    error_message: str | None = None,
) -> uuid.UUID:
    """A task whose steps ran one after another from ``created``; it ends when its last step ended."""
    task_id = uuid.uuid4()
    clock = created
    step_rows: list[dict[str, Any]] = []
    for run in steps:
        started = clock
        finished = started + timedelta(seconds=run.seconds) if run.status in ("succeeded", "failed") else None
        step_rows.append(
            {
                "task_id": task_id,
                "name": run.name,
                "position": POSITION.get(run.name, len(step_rows)),
                "status": run.status,
                "attempts": run.attempts,
                "max_attempts": max(run.attempts, 3),
                "started": started if run.status != "pending" else None,
                "finished": finished,
                "error": run.error,
            }
        )
        clock = finished or clock
    ended = clock if status in ("completed", "failed", "cancelled") else None
    current = next((r.name for r in steps if r.status in ("running", "failed")), None)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                """
                INSERT INTO tasks (id, user_id, user_email, type, status, project_name, progress_percent,
                                   current_step, error_message, created_at, updated_at,
                                   completed_at, failed_at, cancelled_at)
                VALUES (:id, :user_id, :email, :type, :status, :name, :percent, :current, :error,
                        :created, :updated, :completed, :failed, :cancelled)
                """
            ),
            {
                "id": task_id,
                "user_id": user.id,
                "email": user.email,
                "type": task_type,
                "status": status,
                "name": name,
                "percent": 100 if status == "completed" else 40,
                "current": current,
                "error": error_message,
                "created": created,
                "updated": ended or clock,
                "completed": ended if status == "completed" else None,
                "failed": ended if status == "failed" else None,
                "cancelled": ended if status == "cancelled" else None,
            },
        )
        for row in step_rows:
            conn.execute(
                sa.text(
                    """
                    INSERT INTO task_steps (task_id, name, position, status, attempts, max_attempts,
                                            started_at, finished_at, error)
                    VALUES (:task_id, :name, :position, :status, :attempts, :max_attempts,
                            :started, :finished, :error)
                    """
                ),
                row,
            )
    return task_id


def ok(name: str, seconds: float, attempts: int = 1) -> StepRun:
    return StepRun(name, "succeeded", seconds, attempts)


def failed(name: str, seconds: float, error: str, attempts: int = 3) -> StepRun:
    return StepRun(name, "failed", seconds, attempts, error)
