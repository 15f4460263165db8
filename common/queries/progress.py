"""The progress callback as one statement: lock, decide, append once, update, read back."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from common.queries.tasks import PHASE_ORDER_SQL, PROGRESS_FACTS, PROGRESS_FACTS_SQL, TASK_COLUMNS, TERMINAL_SQL

# One statement, so one round trip and no BEGIN/COMMIT: the task row is locked (FOR UPDATE) for
# the statement's length, a terminal task is left alone, the phase only moves forward, the
# progress row is stored once per update_id, and only a stored row updates the task (progress
# raised with greatest, never lowered). The result is the task after the update, or as it stands
# when nothing was stored (the stored row carries the raised figure too, so the history never
# goes down either), with the locked status telling 404 (no row) and 409 (terminal) apart.
_RECORD = sa.text(
    f"""
    WITH locked AS (
        SELECT id, status, progress_percent FROM tasks WHERE id = :task_id FOR UPDATE
    ), decided AS (
        SELECT l.id,
               CASE WHEN CAST(:status AS text) IS NOT NULL
                         AND array_position({PHASE_ORDER_SQL}, CAST(:status AS text))
                             >= array_position({PHASE_ORDER_SQL}, l.status)
                    THEN CAST(:status AS text) ELSE l.status END AS status,
               greatest(CAST(:percent AS smallint), l.progress_percent) AS percent
        FROM locked l WHERE l.status NOT IN {TERMINAL_SQL}
    ), stored AS (
        INSERT INTO task_progress (task_id, update_id, status, message, progress_percent, {PROGRESS_FACTS_SQL})
        SELECT d.id, CAST(:update_id AS text), d.status, :message, d.percent,
               {", ".join(f"CAST(:{fact} AS text)" for fact in PROGRESS_FACTS)}
        FROM decided d
        ON CONFLICT (task_id, update_id) DO NOTHING
        RETURNING task_id
    ), updated AS (
        UPDATE tasks t SET progress_percent = greatest(t.progress_percent, d.percent), message = :message,
               status = d.status,
               {", ".join(f"{fact} = coalesce(CAST(:{fact} AS text), t.{fact})" for fact in PROGRESS_FACTS)},
               updated_at = now(), version = t.version + 1
        FROM decided d JOIN stored s ON s.task_id = d.id
        WHERE t.id = d.id
        RETURNING t.*
    )
    SELECT (SELECT status FROM locked) AS locked_status, {TASK_COLUMNS} FROM updated t
    UNION ALL
    SELECT (SELECT status FROM locked) AS locked_status, {TASK_COLUMNS} FROM tasks t
    WHERE t.id = :task_id AND NOT EXISTS (SELECT 1 FROM updated)
    """
)


def record(conn: sa.Connection, task_id: uuid.UUID, update: dict[str, Any]) -> dict[str, Any] | None:
    """Apply a worker's update; the task row with ``locked_status``, or None when there is no task."""
    row = conn.execute(_RECORD, {"task_id": task_id, **update}).mappings().first()
    return dict(row) if row else None
