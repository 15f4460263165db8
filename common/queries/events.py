"""What the event streams read: a task's history after a position, and a user's changed tasks."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from common.queries.tasks import TERMINAL_SQL, iso_sql

# One statement, so one snapshot: the task's state and its history after :after are read at the
# same instant, and a terminal status is never seen without the progress row stored with it.
# Positions are row numbers in id order. They are stable because every writer of a task's history
# (the step claim and record, callbacks, cancel) holds the task row lock when it inserts, so a
# task's rows commit in id order and no row can appear later below one already seen.
_HISTORY_AFTER = sa.text(
    f"""
    SELECT t.status, t.progress_percent,
           t.status IN {TERMINAL_SQL} AS terminal,
           (SELECT coalesce(json_agg(json_build_object(
                       'position', e.position, 'status', e.status, 'message', e.message,
                       'progress_percent', e.progress_percent, 'org_url', e.org_url,
                       'repo_url', e.repo_url, 'deployment_url', e.deployment_url,
                       'timestamp', e.timestamp) ORDER BY e.position), '[]'::json)
              FROM (SELECT row_number() OVER (ORDER BY p.id) AS position, p.status, p.message,
                           p.progress_percent, p.org_url, p.repo_url, p.deployment_url,
                           {iso_sql("p.timestamp")} AS timestamp
                      FROM task_progress p WHERE p.task_id = t.id) e
             WHERE e.position > :after) AS entries
    FROM tasks t WHERE t.id = :task_id AND t.user_id = :user_id
    """
)

# Tasks of the user touched after :since (updated_at is bumped with version by every change).
_CHANGED = sa.text(
    f"""
    SELECT t.id, t.version, t.status IN {TERMINAL_SQL} AS terminal, t.updated_at
    FROM tasks t WHERE t.user_id = :user_id AND t.updated_at > :since
    ORDER BY t.updated_at, t.id LIMIT :limit
    """
)

_NOW = sa.text("SELECT now()")


def history_after(conn: sa.Connection, task_id: uuid.UUID, user_id: uuid.UUID, after: int) -> dict[str, Any] | None:
    """The task's status and its progress entries at positions > ``after`` (None: not the user's task)."""
    row = conn.execute(_HISTORY_AFTER, {"task_id": task_id, "user_id": user_id, "after": after}).mappings().first()
    if row is None:
        return None
    found = dict(row)
    if isinstance(found["entries"], str):
        found["entries"] = json.loads(found["entries"])
    return found


def changed_tasks(conn: sa.Connection, user_id: uuid.UUID, since: datetime, limit: int) -> list[dict[str, Any]]:
    """The user's tasks changed after ``since``, oldest change first."""
    params = {"user_id": user_id, "since": since, "limit": limit}
    return [dict(r) for r in conn.execute(_CHANGED, params).mappings()]


def database_now(conn: sa.Connection) -> datetime:
    now: datetime = conn.execute(_NOW).scalar_one()
    return now
