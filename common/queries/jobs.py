"""Scheduled jobs and their runs."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from common.queries.tasks import TASK_COLUMNS, TERMINAL_SQL, iso_sql

JOB_COLUMNS = f"""
    j.id, j.user_id, j.name, j.schedule, j.timezone, j.status, j.task_type, j.task_payload, j.task_priority,
    {iso_sql("j.next_run")} AS next_run, {iso_sql("j.last_run")} AS last_run, j.last_task_id,
    j.consecutive_failures, {iso_sql("j.created_at")} AS created_at, {iso_sql("j.updated_at")} AS updated_at,
    j.created_at AS created_at_raw, j.next_run AS next_run_raw
"""

_INSERT = sa.text(
    """
    INSERT INTO jobs (id, user_id, name, schedule, timezone, status, task_type, task_payload, task_priority, next_run)
    VALUES (:id, :user_id, :name, :schedule, :timezone, 'active', :task_type, CAST(:task_payload AS jsonb),
            :task_priority, :next_run)
    """
)

_UPDATE = sa.text(
    """
    UPDATE jobs SET name = :name, schedule = :schedule, timezone = :timezone, status = :status,
           task_type = :task_type, task_payload = CAST(:task_payload AS jsonb), task_priority = :task_priority,
           next_run = :next_run, consecutive_failures = :consecutive_failures, updated_at = now()
    WHERE id = :id
    """
)


def lock_user_jobs(conn: sa.Connection, user_id: uuid.UUID) -> int:
    """Serialise job creation per user (the cap holds under concurrency); the user's job count."""
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"jobs:{user_id}"})
    count: int = conn.execute(sa.text("SELECT count(*) FROM jobs WHERE user_id = :u"), {"u": user_id}).scalar_one()
    return count


def insert_job(conn: sa.Connection, **fields: Any) -> None:
    conn.execute(_INSERT, {**fields, "task_payload": json.dumps(fields["task_payload"])})


def get_job(conn: sa.Connection, job_id: uuid.UUID, user_id: uuid.UUID, *, lock: bool = False) -> dict[str, Any] | None:
    """The user's job (None for unknown ids and other users' jobs alike); locked when asked."""
    sql = f"SELECT {JOB_COLUMNS} FROM jobs j WHERE j.id = :id AND j.user_id = :u" + (" FOR UPDATE" if lock else "")
    row = conn.execute(sa.text(sql), {"id": job_id, "u": user_id}).mappings().first()
    return dict(row) if row else None


def update_job(conn: sa.Connection, job_id: uuid.UUID, fields: dict[str, Any]) -> None:
    conn.execute(_UPDATE, {**fields, "id": job_id, "task_payload": json.dumps(fields["task_payload"])})


def delete_job(conn: sa.Connection, job_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    result = conn.execute(sa.text("DELETE FROM jobs WHERE id = :id AND user_id = :u"), {"id": job_id, "u": user_id})
    return result.rowcount == 1


def list_jobs(
    conn: sa.Connection, user_id: uuid.UUID, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[dict[str, Any]]:
    """Up to ``limit`` of the user's jobs, newest first, after the keyset position ``after``."""
    where = "j.user_id = :u" + (" AND (j.created_at, j.id) < (:ac, :ai)" if after else "")
    params: dict[str, Any] = {"u": user_id, "limit": limit}
    if after:
        params.update(ac=after[0], ai=after[1])
    sql = f"SELECT {JOB_COLUMNS} FROM jobs j WHERE {where} ORDER BY j.created_at DESC, j.id DESC LIMIT :limit"
    return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]


def list_runs(
    conn: sa.Connection, job_id: uuid.UUID, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[dict[str, Any]]:
    """The tasks the job created, newest scheduled time first (refused runs made none)."""
    where = "r.job_id = :j" + (" AND (r.scheduled_for, t.id) < (:ac, :ai)" if after else "")
    params: dict[str, Any] = {"j": job_id, "limit": limit}
    if after:
        params.update(ac=after[0], ai=after[1])
    sql = f"""
        SELECT {TASK_COLUMNS}, r.scheduled_for AS scheduled_for_raw
        FROM job_runs r JOIN tasks t ON t.id = r.task_id
        WHERE {where} ORDER BY r.scheduled_for DESC, t.id DESC LIMIT :limit
    """
    return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]


# --- the scheduler tick --------------------------------------------------------------------------

# Runs whose task has ended, each settled once: the row lock and the 'running' condition make a
# concurrent tick skip what this one settles.
_SETTLE = sa.text(
    f"""
    UPDATE job_runs r SET outcome = t.status
    FROM tasks t
    WHERE r.task_id = t.id AND r.outcome = 'running' AND t.status IN {TERMINAL_SQL}
    RETURNING r.job_id, r.scheduled_for, r.outcome
    """
)

# A failed (or refused) run adds one to the streak; the third in a row fails the job. A completed
# run ends the streak; a cancelled one (the user's choice) leaves it as it is.
_COUNT_OUTCOME = sa.text(
    """
    UPDATE jobs SET
        consecutive_failures = CASE WHEN :failed THEN consecutive_failures + 1
                                    WHEN :completed THEN 0 ELSE consecutive_failures END,
        status = CASE WHEN status = 'active' AND :failed AND consecutive_failures + 1 >= :max_failures
                      THEN 'failed' ELSE status END,
        next_run = CASE WHEN status = 'active' AND :failed AND consecutive_failures + 1 >= :max_failures
                        THEN NULL ELSE next_run END,
        updated_at = now()
    WHERE id = :id
    """
)

_LOCK_DUE = sa.text(
    f"""
    SELECT {JOB_COLUMNS}, u.email AS user_email FROM jobs j JOIN users u ON u.id = j.user_id
    WHERE j.status = 'active' AND j.next_run <= :now
    ORDER BY j.next_run LIMIT :limit
    FOR UPDATE OF j SKIP LOCKED
    """
)

_CLAIM_RUN = sa.text(
    """
    INSERT INTO job_runs (job_id, scheduled_for) VALUES (:j, :at)
    ON CONFLICT (job_id, scheduled_for) DO NOTHING
    RETURNING job_id
    """
)

_FIRED = sa.text(
    """
    UPDATE jobs SET last_run = :at, next_run = :next_run, last_task_id = coalesce(CAST(:task_id AS uuid), last_task_id),
           updated_at = now()
    WHERE id = :id
    """
)


def settle_runs(conn: sa.Connection) -> list[dict[str, Any]]:
    """Mark runs whose task ended with its outcome; the newly settled runs, oldest first."""
    rows = [dict(r) for r in conn.execute(_SETTLE).mappings()]
    return sorted(rows, key=lambda r: r["scheduled_for"])


def count_outcome(conn: sa.Connection, job_id: uuid.UUID, outcome: str, max_failures: int) -> None:
    failed = outcome in ("failed", "refused")
    params = {"id": job_id, "failed": failed, "completed": outcome == "completed", "max_failures": max_failures}
    conn.execute(_COUNT_OUTCOME, params)


def lock_due(conn: sa.Connection, now: datetime, limit: int) -> list[dict[str, Any]]:
    """Lock up to ``limit`` active jobs due at ``now`` (skipping those another tick holds)."""
    return [dict(r) for r in conn.execute(_LOCK_DUE, {"now": now, "limit": limit}).mappings()]


def claim_run(conn: sa.Connection, job_id: uuid.UUID, scheduled_for: datetime) -> bool:
    """Record the run of ``job_id`` for ``scheduled_for``; False when it already exists."""
    return conn.execute(_CLAIM_RUN, {"j": job_id, "at": scheduled_for}).first() is not None


def set_run(
    conn: sa.Connection, job_id: uuid.UUID, scheduled_for: datetime, task_id: uuid.UUID | None, error: str | None
) -> None:
    """The run's task, or its refusal (no task, outcome 'refused', the reason)."""
    conn.execute(
        sa.text(
            """
            UPDATE job_runs SET task_id = CAST(:t AS uuid),
                   outcome = CASE WHEN CAST(:t AS uuid) IS NULL THEN 'refused' ELSE outcome END,
                   error = :e
            WHERE job_id = :j AND scheduled_for = :at
            """
        ),
        {"j": job_id, "at": scheduled_for, "t": task_id, "e": error},
    )


def fired(conn: sa.Connection, job_id: uuid.UUID, at: datetime, next_run: datetime, task_id: uuid.UUID | None) -> None:
    conn.execute(_FIRED, {"id": job_id, "at": at, "next_run": next_run, "task_id": task_id})
