"""Recording what a step's delivery (or a worker's outcome callback) found, inside the caller's
transaction with the task row locked, and what follows once it commits.

Every "not yet" is answered 2xx: the retry of a failed attempt and the next check of a waiting
step are later deliveries that Planter schedules itself (Cloud Tasks schedule_time) under a name
derived from what they are for, so asking twice creates one. A non-2xx answer would make Cloud
Tasks back off the whole queue, slowing every other pipeline (see docs/DESIGN.md, "Liveness").
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from common import pipeline, task_types
from common.log import get_logger
from common.providers import FACT_COLUMNS, HandedOff, StepFailed, StepOutcome, StepRateLimited, StepRefused
from common.queries import steps as q
from common.queries import tasks as task_q
from common.queries import users as user_q
from common.queries import waiting as wait_q
from common.queue import hand_over, schedule
from common.timeutil import iso

if TYPE_CHECKING:
    from common.runtime import Runtime

logger = get_logger("planter.steps")
TERMINAL = ("completed", "failed", "cancelled")


@dataclass
class StepResult:
    outcome: str  # succeeded | failed | retry | waiting | noop | lost
    detail: str = ""
    next: tuple[str, int] | None = field(default=None, repr=False)  # the step handed over, its generation
    # A later delivery of this step: (generation, when, name suffix).
    again: tuple[int, datetime, str] | None = field(default=None, repr=False)
    priority: str = "normal"  # the task's: its deliveries go to that priority's queue


def fail_task(conn: sa.Connection, task_id: uuid.UUID, step: pipeline.StepDef, error: str, user_id: uuid.UUID) -> None:
    message = f"Failed while {step.message[0].lower()}{step.message[1:]}"
    percent = q.fail(conn, task_id, step.name, error, message)
    task_q.insert_progress(conn, task_id, update_id="failed", status="failed", message=message, percent=percent)
    logger.warning("task failed", extra={"fields": {"task_id": str(task_id), "step": step.name, "error": error}})


def apply_success(
    rt: Runtime,
    conn: sa.Connection,
    task_id: uuid.UUID,
    step: pipeline.StepDef,
    row: dict[str, Any],
    outcome: StepOutcome,
) -> StepResult:
    """The step succeeded: store its result, meter its usage, advance or complete the task."""
    facts = {k: outcome.facts.get(k) for k in FACT_COLUMNS}
    period = user_q.billing_period_start(rt.clock.now().date())
    result = {"facts": outcome.facts, "usage": outcome.usage, **(outcome.result or {})}
    q.succeed(conn, task_id, step.name, json.dumps(result), "skipped" if outcome.skipped else "succeeded")
    user_q.add_usage(conn, row["user_id"], period, outcome.usage)
    if row["task_status"] in TERMINAL:
        # A terminal task never changes again; what the step created stays in its result.
        return StepResult("succeeded", f"the task was {row['task_status']} meanwhile; not advancing")
    following = pipeline.next_step(step.name)
    if following is not None:
        generation = q.advance(conn, task_id, following.name, facts, outcome.message)
        return StepResult("succeeded", next=(following.name, generation), priority=row["priority"])
    # The task's type says what it made, from the facts it started with and its steps' results.
    task_type = task_types.TYPES[row["task_type"]]
    started_with = {"facts": {k: row[k] for k in FACT_COLUMNS if row.get(k)}}
    result = task_type.build_result({"task": started_with, **q.step_results(conn, task_id)})
    done = q.complete(conn, task_id, facts, task_type.completed_message, result)
    task_q.insert_progress(
        conn,
        task_id,
        update_id="completed",
        status="completed",
        message=task_type.completed_message,
        percent=pipeline.COMPLETED_PERCENT,
        urls=done,
    )
    return StepResult("succeeded", "the task is completed")


def apply_failure(
    rt: Runtime,
    conn: sa.Connection,
    task_id: uuid.UUID,
    step: pipeline.StepDef,
    row: dict[str, Any],
    attempt: int,
    error: str,
    cause: Exception | None = None,
) -> StepResult:
    """Attempt ``attempt`` failed: retried after its backoff (a scheduled copy), or the task fails.

    ``cause`` (the provider's exception) refines that: a refusal fails the task at once, a rate
    limit retries at the provider's time with the attempt given back, and what the attempt
    consumed anyway (AI calls whose answers were unusable) is metered."""
    if isinstance(cause, StepFailed) and cause.usage:
        user_q.add_usage(conn, row["user_id"], user_q.billing_period_start(rt.clock.now().date()), cause.usage)
    if row["task_status"] in TERMINAL:
        # Stopped (its heartbeat saw the task end) or failed anyway: the step is no longer wanted.
        wait_q.stop(conn, task_id, step.name, error)
        return StepResult("noop", f"the task was {row['task_status']} meanwhile; the step stops")
    if isinstance(cause, StepRefused) or attempt >= row["max_attempts"]:
        # A permanent refusal fails at once: retries could not help and would only delay the news.
        fail_task(conn, task_id, step, error, row["user_id"])
        return StepResult("failed", error)
    if isinstance(cause, StepRateLimited):
        # The provider's own time, and the attempt given back: being throttled is not failing.
        generation, due = q.retry_at(conn, task_id, step.name, error, cause.retry_after, refund=True)
        return StepResult("retry", f"rate limited: {error}", again=(generation, due, f"limited-{attempt}"))
    generation, due = q.retry_at(conn, task_id, step.name, error, pipeline.backoff(step, attempt))
    again = (generation, due, f"retry-{attempt}")
    return StepResult("retry", f"attempt {attempt} failed: {error}", again=again, priority=row["priority"])


def _check_name(claim_id: uuid.UUID) -> str:
    # One name per claim (the hand-off's, or each check's): the claim that set the next check time
    # schedules it once; the same time reached by two checks still gets two names (Cloud Tasks
    # refuses a name used in the last hour, which would lose the second check).
    return f"check-{claim_id.hex[:16]}"


def apply_handoff(
    conn: sa.Connection,
    task_id: uuid.UUID,
    step: pipeline.StepDef,
    handed: HandedOff,
    *,
    claim_id: uuid.UUID,
    first: bool,
    priority: str = "normal",
) -> StepResult:
    """The work goes on outside: the step waits (first hand-off) or keeps waiting; a check is scheduled."""
    if first:
        timeout = handed.timeout_seconds if handed.timeout_seconds is not None else step.timeout_seconds
        handoff = {"state": handed.state, "usage": handed.usage_on_success}
        generation, due = wait_q.wait(
            conn, task_id, step.name, check_after=handed.check_after, timeout=timeout, handoff=handoff
        )
        detail = "handed to an outside worker"
    else:
        handoff = {"state": handed.state}
        generation, due = wait_q.check_again(conn, task_id, step.name, handed.check_after, handoff)
        detail = "the outside work goes on"
    return StepResult("waiting", detail, again=(generation, due, _check_name(claim_id)), priority=priority)


def after_commit(rt: Runtime, task_id: uuid.UUID, step: str, result: StepResult) -> None:
    """Hand over the next step or schedule this one's later delivery; then say what happened."""
    if result.next is not None:
        hand_over(rt.enqueuer, str(task_id), *result.next, result.priority)
    if result.again is not None:
        generation, at, suffix = result.again
        schedule(rt.enqueuer, str(task_id), step, generation, at, suffix, result.priority)
    log_outcome(task_id, step, result)


def log_outcome(task_id: uuid.UUID, step: str, result: StepResult) -> None:
    # One line per delivery's outcome, so that a stall says why (no-op and its reason included).
    fields: dict[str, Any] = {
        "task_id": str(task_id),
        "step": step,
        "outcome": result.outcome,
        "detail": result.detail,
    }
    if result.next is not None:
        fields["handed_over"] = result.next[0]
    if result.again is not None:
        fields["next_delivery_at"] = iso(result.again[1])
    logger.info("step outcome", extra={"fields": fields})
