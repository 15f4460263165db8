"""Progress callbacks from outside workers: append a row and update the task, in one transaction."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from common.db import run_in_transaction
from common.errors import Conflict, NotFound
from common.models import PHASES, ProgressCallback, Task
from common.queries import tasks as q
from common.services.tasks import TERMINAL, to_task

_UPDATE_TASK = sa.text(
    """
    UPDATE tasks SET progress_percent = greatest(progress_percent, :percent), message = :message,
           status = :status, org_url = coalesce(:org_url, org_url), repo_url = coalesce(:repo_url, repo_url),
           deployment_url = coalesce(:deployment_url, deployment_url),
           gcp_project_id = coalesce(:gcp_project_id, gcp_project_id), updated_at = now(), version = version + 1
    WHERE id = :task_id
    """
)


def _later_phase(current: str, given: str | None) -> str:
    """A worker may move the phase forward, never back (the pipeline owns the order)."""
    if given is None or PHASES.index(given) < PHASES.index(current):
        return current
    return given


def post_progress(task_id: uuid.UUID, update: ProgressCallback) -> Task:
    """Record a worker's progress update; a repeated update_id is stored once and answered again."""
    urls: dict[str, Any] = {
        "org_url": update.org_url,
        "repo_url": update.repo_url,
        "deployment_url": update.deployment_url,
        "gcp_project_id": update.gcp_project_id,
    }

    def work(conn: sa.Connection) -> dict[str, Any]:
        locked = q.lock_task(conn, task_id)
        if locked is None:
            raise NotFound("no task with that id")
        if locked["status"] in TERMINAL:
            raise Conflict(f"the task is already {locked['status']}")
        status = _later_phase(locked["status"], update.status)
        percent = update.progress_percent if update.progress_percent is not None else locked["progress_percent"]
        stored = q.insert_progress(
            conn, task_id, update_id=update.update_id, status=status, message=update.message, percent=percent, urls=urls
        )
        if stored:
            conn.execute(
                _UPDATE_TASK,
                {"task_id": task_id, "percent": percent, "message": update.message, "status": status, **urls},
            )
        row = q.get_task(conn, task_id, locked["user_id"])
        assert row is not None
        return row

    return to_task(run_in_transaction(work))
