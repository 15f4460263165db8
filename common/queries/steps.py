"""Step transitions, each ONE call of a server-side function (migration 0004_i13).

A transition used to be a transaction of 3-7 statements, each sent by pg8000 as three exchanges and
planned afresh by PostgreSQL. As a PL/pgSQL function it is one statement, so it needs no
BEGIN/COMMIT (autocommit makes it atomic), and its statements are planned once per session. The
functions hold the statements in the order the engine used to send them; the decisions that
used to sit between them come back as a ``verdict``. What they need from the pipeline's
definitions (phase order, messages, backoff, the next step) is passed in.

Lock, then read: every function locks the task row with a statement of its own and reads the step
in the next one. A single ``SELECT ... JOIN task_steps ... FOR UPDATE OF t`` is not enough under
READ COMMITTED: a statement that waited for the lock re-reads only the locked row, and the joined
step row keeps the version from before the previous holder committed. A VOLATILE function takes a
fresh snapshot for each statement, so its read sees what the previous holder committed.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from common.db import prepared
from common.providers import FACT_COLUMNS
from common.queries.tasks import PHASE_ORDER_PARAM

# A delivery scheduled for due_at may arrive a little early (the queue's clock is not the
# database's): within this margin it counts as due rather than as a no-op waiting for a copy.
EARLY_SECONDS = 0.2


@dataclass(frozen=True)
class Holder:
    """Who records on a step: a delivery under its claim, or a worker's outcome callback (no claim:
    it decided under the task lock, in the same transaction, that the step waits)."""

    task_id: uuid.UUID
    step: str
    claim_id: uuid.UUID | None
    wanted: str  # the status the step must still have: running, or waiting for a check
    note: str | None = None  # the outcome remembered on a waiting step, to tell a repeat from a late one

    def params(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "step": self.step,
            "claim_id": self.claim_id,
            "wanted": self.wanted,
            "note": self.note,
            "early": EARLY_SECONDS,
        }


_LOCK_STEP = "SELECT * FROM planter_lock_step(:task_id, :step, :early)"

# Only the columns a delivery reads (a new attempt's context, a no-op's reason): pg8000 decodes
# every column sent, and parses a timestamptz with strptime, so due_at is sent only to the two
# no-ops that say when the step is due (services.steps._NOTHING_TO_DO).
_CLAIM_STEP = (
    "SELECT verdict, attempt, user_id, task_status, status, lease_left,"
    " CASE WHEN verdict IN ('backing_off', 'check_not_due') THEN due_at END AS due_at,"
    f" project_name, project_description, mode, payload, handoff, {', '.join(FACT_COLUMNS)}"
    " FROM planter_claim_step(:task_id, :step, :claim_id, :timeout, :message, :percent, :phases, :early,"
    " :hold, :fail_error, :fail_message)"
)

_HOLDER = ":task_id, :step, :claim_id, :wanted, :note, :early"

_RECORD_SUCCESS = (
    f"SELECT * FROM planter_record_success({_HOLDER}, :status, :result, :period, :usage, :next_step, :facts, :message)"
)

_COMPLETE_TASK = "SELECT planter_complete_task(:task_id, :facts, :message, :result, :percent)"

_RECORD_FAILURE = (
    f"SELECT * FROM planter_record_failure({_HOLDER}, :attempt, :error, :period, :usage, :refused, :limited_after,"
    " :backoff, :fail_message)"
)

_RECORD_HANDOFF = f"SELECT * FROM planter_record_handoff({_HOLDER}, :first, :check_after, :timeout, :handoff)"

_HEARTBEAT = "SELECT planter_heartbeat(:task_id, :step, :claim_id, :timeout) AS beat"

_REAP = "SELECT * FROM planter_reap(:grace, :limit, :fail_messages, :no_attempts_error, :retry_error)"


def lock_step(conn: sa.Connection, task_id: uuid.UUID, step: str) -> dict[str, Any] | None:
    """Lock the task and read the step's state (for the caller's transaction); None when absent."""
    rows = prepared(conn, _LOCK_STEP, {"task_id": task_id, "step": step, "early": EARLY_SECONDS})
    return rows[0] if rows else None


def claim_step(
    conn: sa.Connection,
    task_id: uuid.UUID,
    step: str,
    claim_id: uuid.UUID,
    *,
    timeout: float,
    message: str,
    percent: int,
    hold: float,
    fail_error: str,
    fail_message: str,
) -> dict[str, Any]:
    """A delivery's claim: the step's state and the ``verdict`` (claimed, check, exhausted, or why not);
    ``attempt`` is the attempt claimed."""
    params = {
        "task_id": task_id,
        "step": step,
        "claim_id": claim_id,
        "timeout": timeout,
        "message": message,
        "percent": percent,
        "phases": PHASE_ORDER_PARAM,
        "early": EARLY_SECONDS,
        "hold": hold,
        "fail_error": fail_error,
        "fail_message": fail_message,
    }
    (row,) = prepared(conn, _CLAIM_STEP, params)
    return row


def record_success(
    conn: sa.Connection,
    holder: Holder,
    *,
    status: str,
    result: dict[str, Any],
    period: date,
    usage: list[int],
    next_step: str | None,
    facts: dict[str, Any],
    message: str | None,
) -> dict[str, Any]:
    """The verdict: lost, terminal, advanced (``generation`` of the next step) or last (the task's
    ``task_type``, ``started_facts`` and ``step_results``, for complete())."""
    params = {
        **holder.params(),
        "status": status,
        "result": json.dumps(result),
        "period": period,
        "usage": usage,
        "next_step": next_step,
        "facts": json.dumps(facts),
        "message": message,
    }
    (row,) = prepared(conn, _RECORD_SUCCESS, params)
    return row


def complete(
    conn: sa.Connection, task_id: uuid.UUID, facts: dict[str, Any], message: str, result: dict[str, Any], percent: int
) -> None:
    """Complete the task with its result (what it made; see common.task_types) and note it."""
    params = {
        "task_id": task_id,
        "facts": json.dumps(facts),
        "message": message,
        "result": json.dumps(result),
        "percent": percent,
    }
    prepared(conn, _COMPLETE_TASK, params)


def record_failure(
    conn: sa.Connection,
    holder: Holder,
    *,
    attempt: int,
    error: str,
    period: date,
    usage: list[int],
    refused: bool,
    limited_after: float | None,
    backoff: float,
    fail_message: str,
) -> dict[str, Any]:
    """The verdict: lost, stopped (the task ended), failed, limited or retry (``generation``, ``due_at``)."""
    params = {
        **holder.params(),
        "attempt": attempt,
        "error": error,
        "period": period,
        "usage": usage,
        "refused": refused,
        "limited_after": limited_after,
        "backoff": backoff,
        "fail_message": fail_message,
    }
    (row,) = prepared(conn, _RECORD_FAILURE, params)
    return row


def record_handoff(
    conn: sa.Connection,
    holder: Holder,
    *,
    first: bool,
    check_after: float,
    timeout: float,
    handoff: dict[str, Any],
) -> dict[str, Any]:
    """The verdict: lost, stopped (the task ended) or waiting (``generation``, ``due_at`` of the check)."""
    params = {
        **holder.params(),
        "first": first,
        "check_after": check_after,
        "timeout": timeout,
        "handoff": json.dumps(handoff),
    }
    (row,) = prepared(conn, _RECORD_HANDOFF, params)
    return row


def heartbeat(conn: sa.Connection, task_id: uuid.UUID, step: str, claim_id: uuid.UUID, timeout: float) -> str:
    """Extend the lease: "ok"; "ended" when the task ended (cancelled); "lost" when the lease expired
    or the claim went to another run. An expired lease is never revived."""
    params = {"task_id": task_id, "step": step, "claim_id": claim_id, "timeout": timeout}
    (row,) = prepared(conn, _HEARTBEAT, params)
    beat: str = row["beat"]
    return beat


def reap(
    conn: sa.Connection,
    grace: float,
    limit: int,
    *,
    fail_messages: dict[str, str],
    no_attempts_error: str,
    retry_error: str,
) -> list[dict[str, Any]]:
    """The reaper's moves on up to ``limit`` tasks with stalled steps (tasks in use are skipped):
    one row per step, ``action`` failed or resent (under ``generation``)."""
    params = {
        "grace": grace,
        "limit": limit,
        "fail_messages": json.dumps(fail_messages),
        "no_attempts_error": no_attempts_error,
        "retry_error": retry_error,
    }
    return prepared(conn, _REAP, params)
