"""What creating a task of a non-create_project type reads: the project task it works on."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

# Locked: a teardown and a redeploy of the same project serialise their checks.
_PROJECT_TASK = sa.text(
    """
    SELECT id, type, status, project_name, project_description, mode,
           org_url, repo_url, deployment_url, gcp_project_id, project_id
    FROM tasks WHERE id = :task_id AND user_id = :user_id
    FOR SHARE
    """
)


def project_task(conn: sa.Connection, task_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, Any] | None:
    """The user's task ``task_id`` (None for unknown ids and other users' tasks alike)."""
    row = conn.execute(_PROJECT_TASK, {"task_id": task_id, "user_id": user_id}).mappings().first()
    return dict(row) if row else None


# A teardown of the project that has not failed or been cancelled: it is gone, or going.
_TORN_DOWN = sa.text(
    """
    SELECT EXISTS (
        SELECT 1 FROM tasks WHERE user_id = :user_id AND type = 'teardown'
          AND status NOT IN ('failed', 'cancelled') AND payload ->> 'project_task_id' = :project_task_id
    )
    """
)


def torn_down(conn: sa.Connection, project_task_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Whether the user's project task has a teardown completed or under way."""
    found: bool = conn.execute(_TORN_DOWN, {"user_id": user_id, "project_task_id": str(project_task_id)}).scalar_one()
    return found
