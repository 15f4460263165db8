"""What creating a task of a non-create_project type reads: the project task it works on."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

# Locked: a teardown and a redeploy of the same project serialise their checks. A fact the task
# lacks is taken from what its steps recorded making (a later step's over an earlier one's): a step
# that succeeded after the user cancelled the task stored its result but moved no fact onto the task,
# and a teardown must still find what it made.
_PROJECT_TASK = sa.text(
    """
    SELECT t.id, t.type, t.status, t.project_name, t.project_description, t.mode,
           coalesce(t.org_url, m.facts ->> 'org_url') AS org_url,
           coalesce(t.repo_url, m.facts ->> 'repo_url') AS repo_url,
           coalesce(t.deployment_url, m.facts ->> 'deployment_url') AS deployment_url,
           coalesce(t.gcp_project_id, m.facts ->> 'gcp_project_id') AS gcp_project_id,
           coalesce(t.project_id, m.facts ->> 'project_id') AS project_id
    FROM tasks t
    LEFT JOIN LATERAL (
        SELECT jsonb_object_agg(f.key, f.value ORDER BY s.position) AS facts
        FROM task_steps s,
             jsonb_each_text(CASE WHEN jsonb_typeof(s.result -> 'facts') = 'object'
                                  THEN s.result -> 'facts' ELSE '{}'::jsonb END) f
        WHERE s.task_id = t.id AND f.value IS NOT NULL
    ) m ON true
    WHERE t.id = :task_id AND t.user_id = :user_id
    FOR SHARE OF t
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
