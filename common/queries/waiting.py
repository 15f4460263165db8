"""Waiting steps: handed to an outside worker, checked later by a scheduled delivery."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa

# The run that handed off keeps its claim id: a check records only under the claim it took.
_WAIT = sa.text(
    """
    UPDATE task_steps SET status = 'waiting', heartbeat_at = now(), handoff = CAST(:handoff AS jsonb),
           due_at = now() + make_interval(secs => :check_after),
           lease_expires_at = now() + make_interval(secs => :timeout)
    WHERE task_id = :task_id AND name = :step
    RETURNING generation, due_at
    """
)

# A check in flight holds the step for ``hold`` seconds: copies arriving meanwhile see the next
# check not yet due and do nothing; if the check's delivery dies, the reaper sends another.
_CLAIM_CHECK = sa.text(
    """
    UPDATE task_steps SET claim_id = :claim_id, heartbeat_at = now(), due_at = now() + make_interval(secs => :hold)
    WHERE task_id = :task_id AND name = :step AND status = 'waiting'
    """
)

_CHECK_AGAIN = sa.text(
    """
    UPDATE task_steps SET heartbeat_at = now(), handoff = CAST(:handoff AS jsonb),
           due_at = now() + make_interval(secs => :check_after)
    WHERE task_id = :task_id AND name = :step
    RETURNING generation, due_at
    """
)

# Remembered after the step leaves 'waiting', so that a repeated outcome is told from a late one.
_NOTE_OUTCOME = sa.text(
    """
    UPDATE task_steps
    SET handoff = coalesce(handoff, '{}'::jsonb) || jsonb_build_object('outcome', CAST(:outcome AS text))
    WHERE task_id = :task_id AND name = :step
    """
)

_STOP = sa.text(
    """
    UPDATE task_steps SET status = 'skipped', finished_at = now(), claim_id = NULL, lease_expires_at = NULL,
           due_at = NULL, error = :error
    WHERE task_id = :task_id AND name = :step AND status IN ('waiting', 'running')
    """
)


def wait(
    conn: sa.Connection,
    task_id: uuid.UUID,
    step: str,
    *,
    check_after: float,
    timeout: float,
    handoff: dict[str, Any],
) -> tuple[int, datetime]:
    """Mark a claimed step waiting; its generation and when its first check is due."""
    params = {
        "task_id": task_id,
        "step": step,
        "check_after": check_after,
        "timeout": timeout,
        "handoff": json.dumps(handoff),
    }
    row = conn.execute(_WAIT, params).one()
    return row[0], row[1]


def claim_check(conn: sa.Connection, task_id: uuid.UUID, step: str, claim_id: uuid.UUID, hold: float) -> None:
    conn.execute(_CLAIM_CHECK, {"task_id": task_id, "step": step, "claim_id": claim_id, "hold": hold})


def check_again(
    conn: sa.Connection, task_id: uuid.UUID, step: str, check_after: float, handoff: dict[str, Any]
) -> tuple[int, datetime]:
    """The outside work goes on: the next check's generation and due time."""
    params = {"task_id": task_id, "step": step, "check_after": check_after, "handoff": json.dumps(handoff)}
    row = conn.execute(_CHECK_AGAIN, params).one()
    return row[0], row[1]


def note_outcome(conn: sa.Connection, task_id: uuid.UUID, step: str, outcome: str) -> None:
    conn.execute(_NOTE_OUTCOME, {"task_id": task_id, "step": step, "outcome": outcome})


def stop(conn: sa.Connection, task_id: uuid.UUID, step: str, error: str) -> None:
    """A waiting or running step of a task that ended: skipped, its work no longer wanted."""
    conn.execute(_STOP, {"task_id": task_id, "step": step, "error": error})
