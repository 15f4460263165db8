"""Step rows: claiming a step, recording its outcome, and the reaper's scans."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from common.queries.tasks import PHASE_ORDER_SQL, TERMINAL_SQL

# Two statements on purpose. Under READ COMMITTED, a `SELECT ... JOIN ... FOR UPDATE OF t` that
# waited for the lock re-reads only the locked task row: the joined step row keeps the version
# of the statement's snapshot, taken before the previous holder committed. Concurrent duplicates
# would then all see the step still pending and all claim it. Reading the step in a statement
# that starts after the lock is granted sees what the previous holder committed.
_LOCK_TASK = sa.text("SELECT 1 FROM tasks WHERE id = :task_id FOR UPDATE")

_READ_STEP = sa.text(
    """
    SELECT t.status AS task_status, t.user_id, t.payload, t.project_name, t.project_description, t.mode,
           t.type AS task_type, t.priority,
           t.progress_percent, t.org_url, t.repo_url, t.deployment_url, t.gcp_project_id, t.project_id,
           s.status, s.attempts, s.max_attempts, s.generation, s.position, s.claim_id, s.handoff, s.due_at,
           s.due_at > now() + make_interval(secs => :early) AS backing_off,
           extract(epoch FROM s.due_at - now()) AS due_in,
           s.lease_expires_at > now() AS leased, extract(epoch FROM s.lease_expires_at - now()) AS lease_left,
           EXISTS (SELECT 1 FROM task_steps p WHERE p.task_id = s.task_id AND p.position < s.position
                   AND p.status NOT IN ('succeeded', 'skipped')) AS earlier_unfinished
    FROM tasks t JOIN task_steps s ON s.task_id = t.id
    WHERE t.id = :task_id AND s.name = :step
    """
)

# The phase never moves back: a worker's callback may already have shown a later one.
_CLAIM = sa.text(
    f"""
    WITH step AS (
        UPDATE task_steps SET status = 'running', attempts = attempts + 1, claim_id = :claim_id,
               started_at = coalesce(started_at, now()), heartbeat_at = now(),
               lease_expires_at = now() + make_interval(secs => :timeout), due_at = NULL
        WHERE task_id = :task_id AND name = :step
        RETURNING attempts
    ), task AS (
        UPDATE tasks SET current_step = :step, message = :message,
               status = CASE WHEN array_position({PHASE_ORDER_SQL}, status)
                                  > array_position({PHASE_ORDER_SQL}, CAST(:step AS text))
                             THEN status ELSE :step END,
               progress_percent = greatest(progress_percent, :percent), updated_at = now(), version = version + 1
        WHERE id = :task_id
        RETURNING progress_percent, status
    ), progress AS (
        INSERT INTO task_progress (task_id, update_id, status, message, progress_percent)
        SELECT :task_id, 'step:' || :step, task.status, :message, task.progress_percent FROM task
        ON CONFLICT (task_id, update_id) DO NOTHING
    )
    SELECT step.attempts FROM step
    """
)

# A lease that has expired is not revived: from then on the reaper or a redelivery may take the
# step over (they decide under the task lock, which a heartbeat does not take). Nor is the lease of
# a step whose task ended (cancelled): the run learns at its next beat that its work is not wanted.
_HEARTBEAT = sa.text(
    f"""
    UPDATE task_steps SET heartbeat_at = now(), lease_expires_at = now() + make_interval(secs => :timeout)
    WHERE task_id = :task_id AND name = :step AND claim_id = :claim_id AND status = 'running'
      AND lease_expires_at > now()
      AND EXISTS (SELECT 1 FROM tasks t WHERE t.id = :task_id AND t.status NOT IN {TERMINAL_SQL})
    """
)

_SUCCEED = sa.text(
    """
    UPDATE task_steps SET status = :status, finished_at = now(), claim_id = NULL, lease_expires_at = NULL,
           error = NULL, result = CAST(:result AS jsonb), due_at = NULL
    WHERE task_id = :task_id AND name = :step
    """
)

_RETRY_LATER = sa.text(
    """
    UPDATE task_steps SET status = 'pending', claim_id = NULL, lease_expires_at = NULL, error = coalesce(:error, error),
           due_at = now() + make_interval(secs => :delay), generation = generation + :bump,
           attempts = attempts - :refund
    WHERE task_id = :task_id AND name = :step
    RETURNING generation, due_at
    """
)

# A waiting step whose check never arrived: checked now, under a new name; it stays waiting.
_BUMP_GENERATION = sa.text(
    """
    UPDATE task_steps SET generation = generation + 1, due_at = now()
    WHERE task_id = :task_id AND name = :step
    RETURNING generation
    """
)

_FAIL_STEP = sa.text(
    """
    UPDATE task_steps SET status = 'failed', finished_at = now(), claim_id = NULL, lease_expires_at = NULL,
           error = :error, due_at = NULL
    WHERE task_id = :task_id AND name = :step
    """
)

_SKIP_REST = sa.text(
    "UPDATE task_steps SET status = 'skipped', due_at = NULL WHERE task_id = :task_id AND status = 'pending'"
)

_MAKE_DUE = sa.text(
    """
    UPDATE task_steps SET due_at = now() WHERE task_id = :task_id AND name = :step AND status = 'pending'
    RETURNING generation
    """
)

_ADVANCE_TASK = sa.text(
    """
    UPDATE tasks SET current_step = :next_step, updated_at = now(), version = version + 1,
           org_url = coalesce(:org_url, org_url), repo_url = coalesce(:repo_url, repo_url),
           deployment_url = coalesce(:deployment_url, deployment_url),
           gcp_project_id = coalesce(:gcp_project_id, gcp_project_id), project_id = coalesce(:project_id, project_id),
           message = coalesce(:message, message)
    WHERE id = :task_id
    """
)

_COMPLETE_TASK = sa.text(
    """
    UPDATE tasks SET status = 'completed', completed_at = now(), progress_percent = 100, current_step = NULL,
           message = :message, updated_at = now(), version = version + 1, result = CAST(:result AS jsonb)
    WHERE id = :task_id
    RETURNING org_url, repo_url, deployment_url, gcp_project_id
    """
)

_FAIL_TASK = sa.text(
    """
    UPDATE tasks SET status = 'failed', failed_at = now(), error_message = :error, message = :message,
           updated_at = now(), version = version + 1
    WHERE id = :task_id
    RETURNING progress_percent
    """
)

# A pending step is presumed lost once it has been due for the grace period, doubled for each time
# the reaper already sent it again (generation), up to 64 times: a step that is only waiting in a
# busy queue (production's dispatch limit, the emulator's one-at-a-time) gets a few copies, not one
# more every grace period, which would crowd the queue further and feed on itself.
#
# A waiting step stalls when its outside work outlived its timeout (lease_expires_at), or when its
# scheduled check was due a grace period ago and never arrived.
_STALLED_CONDITION = """
    ((s.status IN ('running', 'waiting') AND s.lease_expires_at < now())
     OR (s.status IN ('pending', 'waiting')
         AND s.due_at < now() - make_interval(secs => :grace * power(2, least(s.generation, 6)))))
"""

# Active tasks with a step whose run went silent, or that was due long ago and never arrived.
_LOCK_STALLED_TASKS = sa.text(
    f"""
    SELECT t.id FROM tasks t
    WHERE t.status NOT IN {TERMINAL_SQL}
      AND EXISTS (SELECT 1 FROM task_steps s WHERE s.task_id = t.id AND {_STALLED_CONDITION})
    ORDER BY t.id LIMIT :limit
    FOR UPDATE SKIP LOCKED
    """
)

# Read again once the tasks are locked (see _LOCK_TASK): the first statement's view of the steps
# predates whatever a delivery committed while the reaper waited for its snapshot to lock.
_STALLED_STEPS = sa.text(
    f"""
    SELECT s.task_id, t.user_id, t.priority, s.name, s.status, s.attempts, s.max_attempts,
           s.lease_expires_at < now() AS timed_out,
           extract(epoch FROM now() - CASE WHEN s.lease_expires_at < now() THEN coalesce(s.heartbeat_at, s.started_at)
                                           ELSE s.due_at END) AS waited_seconds
    FROM task_steps s
    JOIN tasks t ON t.id = s.task_id
    WHERE s.task_id = ANY(CAST(:ids AS uuid[])) AND t.status NOT IN {TERMINAL_SQL} AND {_STALLED_CONDITION}
    ORDER BY s.task_id, s.position
    """
)


# A delivery scheduled for due_at may arrive a little early (the queue's clock is not the
# database's): within this margin it counts as due rather than as a no-op waiting for a copy.
EARLY_SECONDS = 0.2


def lock_step(conn: sa.Connection, task_id: uuid.UUID, step: str) -> dict[str, Any] | None:
    """Lock the task and read the step's state; None when there is no such task or step."""
    if conn.execute(_LOCK_TASK, {"task_id": task_id}).first() is None:
        return None
    row = conn.execute(_READ_STEP, {"task_id": task_id, "step": step, "early": EARLY_SECONDS}).mappings().first()
    return dict(row) if row else None


def claim(
    conn: sa.Connection, task_id: uuid.UUID, step: str, claim_id: uuid.UUID, timeout: float, message: str, percent: int
) -> int:
    """Mark the step running under ``claim_id`` and show its phase; returns the attempt number."""
    params = {
        "task_id": task_id,
        "step": step,
        "claim_id": claim_id,
        "timeout": timeout,
        "message": message,
        "percent": percent,
    }
    attempts: int = conn.execute(_CLAIM, params).scalar_one()
    return attempts


_TASK_ENDED = sa.text(f"SELECT status IN {TERMINAL_SQL} FROM tasks WHERE id = :task_id")


def heartbeat(conn: sa.Connection, task_id: uuid.UUID, step: str, claim_id: uuid.UUID, timeout: float) -> str:
    """Extend the lease: "ok"; "ended" when the task ended (cancelled); "lost" when the lease expired
    or the claim went to another run."""
    result = conn.execute(_HEARTBEAT, {"task_id": task_id, "step": step, "claim_id": claim_id, "timeout": timeout})
    if result.rowcount == 1:
        return "ok"
    ended = conn.execute(_TASK_ENDED, {"task_id": task_id}).scalar()
    return "ended" if ended else "lost"


def succeed(conn: sa.Connection, task_id: uuid.UUID, step: str, result_json: str, status: str = "succeeded") -> None:
    """Record the step's result; ``status`` is succeeded, or skipped when it had nothing to do here."""
    conn.execute(_SUCCEED, {"task_id": task_id, "step": step, "result": result_json, "status": status})


def retry_later(
    conn: sa.Connection,
    task_id: uuid.UUID,
    step: str,
    error: str | None,
    delay: float,
    *,
    bump: bool = False,
    refund: bool = False,
) -> int:
    """Put the step back to pending, due after ``delay``; returns its generation (bumped if asked).

    ``refund`` gives the attempt back (a rate limit is not a failure of the step)."""
    generation, _ = retry_at(conn, task_id, step, error, delay, bump=bump, refund=refund)
    return generation


def retry_at(
    conn: sa.Connection,
    task_id: uuid.UUID,
    step: str,
    error: str | None,
    delay: float,
    *,
    bump: bool = False,
    refund: bool = False,
) -> tuple[int, datetime]:
    """As retry_later; returns the generation and when the step is due."""
    params = {
        "task_id": task_id,
        "step": step,
        "error": error,
        "delay": delay,
        "bump": 1 if bump else 0,
        "refund": 1 if refund else 0,
    }
    row = conn.execute(_RETRY_LATER, params).one()
    return row[0], row[1]


def bump_generation(conn: sa.Connection, task_id: uuid.UUID, step: str) -> int:
    generation: int = conn.execute(_BUMP_GENERATION, {"task_id": task_id, "step": step}).scalar_one()
    return generation


def fail_step(conn: sa.Connection, task_id: uuid.UUID, step: str, error: str) -> None:
    """Mark the step failed (its task decides separately what that means)."""
    conn.execute(_FAIL_STEP, {"task_id": task_id, "step": step, "error": error})


def fail(conn: sa.Connection, task_id: uuid.UUID, step: str, error: str, message: str) -> int:
    """Fail the step and the task, skip the steps after it; returns the task's progress."""
    fail_step(conn, task_id, step, error)
    conn.execute(_SKIP_REST, {"task_id": task_id})
    percent: int = conn.execute(
        _FAIL_TASK, {"task_id": task_id, "error": f"{step}: {error}", "message": message}
    ).scalar_one()
    return percent


def advance(conn: sa.Connection, task_id: uuid.UUID, next_step: str, facts: dict[str, Any], message: str | None) -> int:
    """Record the step's facts on the task and make the next step due; returns its generation."""
    conn.execute(_ADVANCE_TASK, {"task_id": task_id, "next_step": next_step, "message": message, **facts})
    generation: int = conn.execute(_MAKE_DUE, {"task_id": task_id, "step": next_step}).scalar_one()
    return generation


def complete(
    conn: sa.Connection, task_id: uuid.UUID, facts: dict[str, Any], message: str, result: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Complete the task with its result (what it made; see common.task_types)."""
    conn.execute(_ADVANCE_TASK, {"task_id": task_id, "next_step": None, "message": None, **facts})
    params = {"task_id": task_id, "message": message, "result": json.dumps(result or {})}
    return dict(conn.execute(_COMPLETE_TASK, params).mappings().one())


_STEP_RESULTS = sa.text("SELECT name, result FROM task_steps WHERE task_id = :task_id ORDER BY position")


def step_results(conn: sa.Connection, task_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    """Each step's stored result ({"facts", "usage"}) by step name, in pipeline order."""
    return {r.name: dict(r.result or {}) for r in conn.execute(_STEP_RESULTS, {"task_id": task_id})}


def stalled(conn: sa.Connection, grace: float, limit: int) -> list[dict[str, Any]]:
    """Lock up to ``limit`` active tasks with stalled steps (skipping tasks in use); their stalled steps."""
    ids = [str(r[0]) for r in conn.execute(_LOCK_STALLED_TASKS, {"grace": grace, "limit": limit})]
    if not ids:
        return []
    return [dict(r) for r in conn.execute(_STALLED_STEPS, {"ids": ids, "grace": grace}).mappings()]
