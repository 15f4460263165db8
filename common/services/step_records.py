"""Recording what a step's delivery (or a worker's outcome callback) found, as one call of a
server-side function that locks the task row and checks the claim (queries.steps), and what
follows once it commits.

Every "not yet" is answered 2xx: the retry of a failed attempt and the next check of a waiting
step are later deliveries that Planter schedules itself (Cloud Tasks schedule_time) under a name
derived from what they are for, so asking twice creates one. A non-2xx answer would make Cloud
Tasks back off the whole queue, slowing every other pipeline (see docs/DESIGN.md, "Liveness").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from common import pipeline, task_types
from common.log import get_logger
from common.providers import FACT_COLUMNS, HandedOff, StepFailed, StepOutcome, StepRateLimited, StepRefused
from common.queries import steps as q
from common.queries import users as user_q
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


NO_ATTEMPTS_LEFT = "the step stopped responding and has no attempts left"


def failure_message(step: pipeline.StepDef) -> str:
    """The task's message when it fails at ``step``."""
    return f"Failed while {step.message[0].lower()}{step.message[1:]}"


def log_task_failed(task_id: uuid.UUID, step: str, error: str) -> None:
    logger.warning("task failed", extra={"fields": {"task_id": str(task_id), "step": step, "error": error}})


def _period(rt: Runtime) -> date:
    return user_q.billing_period_start(rt.clock.now().date())


def needs_transaction(step: pipeline.StepDef, found: object) -> bool:
    """Every record is one function call, atomic alone, except a last step's success: the task's
    result is built here from its steps' results, then stored by a second call under the same lock."""
    return isinstance(found, StepOutcome) and pipeline.next_step(step.name) is None


def _lost() -> StepResult:
    return StepResult("lost", "the step was taken over or finished meanwhile; nothing recorded")


def apply_success(
    rt: Runtime, conn: sa.Connection, holder: q.Holder, step: pipeline.StepDef, outcome: StepOutcome
) -> StepResult:
    """The step succeeded: store its result, meter its usage, advance or complete the task."""
    facts = {k: outcome.facts.get(k) for k in FACT_COLUMNS}
    following = pipeline.next_step(step.name)
    found = q.record_success(
        conn,
        holder,
        status="skipped" if outcome.skipped else "succeeded",
        result={"facts": outcome.facts, "usage": outcome.usage, **(outcome.result or {})},
        period=_period(rt),
        usage=user_q.usage_values(outcome.usage),
        next_step=following.name if following is not None else None,
        facts=facts,
        message=outcome.message,
    )
    if found["verdict"] == "lost":
        return _lost()
    if found["verdict"] == "terminal":
        # A terminal task never changes again; what the step created stays in its result.
        return StepResult("succeeded", f"the task was {found['task_status']} meanwhile; not advancing")
    if following is not None:
        return StepResult("succeeded", next=(following.name, found["generation"]), priority=found["priority"])
    # The task's type says what it made, from the facts it started with and its steps' results.
    task_type = task_types.TYPES[found["task_type"]]
    steps = {name: dict(result or {}) for name, result in (found["step_results"] or {}).items()}
    result = task_type.build_result({"task": {"facts": found["started_facts"] or {}}, **steps})
    q.complete(conn, holder.task_id, facts, task_type.completed_message, result, pipeline.COMPLETED_PERCENT)
    return StepResult("succeeded", "the task is completed")


def apply_failure(
    rt: Runtime,
    conn: sa.Connection,
    holder: q.Holder,
    step: pipeline.StepDef,
    attempt: int,
    error: str,
    cause: Exception | None = None,
) -> StepResult:
    """Attempt ``attempt`` failed: retried after its backoff (a scheduled copy), or the task fails.

    ``cause`` (the provider's exception) refines that: a refusal fails the task at once (retries
    could not help and would only delay the news), a rate limit retries at the provider's time
    with the attempt given back (being throttled is not failing), and what the attempt consumed
    anyway (AI calls whose answers were unusable) is metered. A task that ended meanwhile (its
    heartbeat saw it cancelled) stops the step: it is no longer wanted."""
    found = q.record_failure(
        conn,
        holder,
        attempt=attempt,
        error=error,
        period=_period(rt),
        usage=user_q.usage_values(cause.usage if isinstance(cause, StepFailed) else {}),
        refused=isinstance(cause, StepRefused),
        limited_after=cause.retry_after if isinstance(cause, StepRateLimited) else None,
        backoff=pipeline.backoff(step, attempt),
        fail_message=failure_message(step),
    )
    verdict = found["verdict"]
    if verdict == "lost":
        return _lost()
    if verdict == "stopped":
        return StepResult("noop", f"the task was {found['task_status']} meanwhile; the step stops")
    if verdict == "failed":
        log_task_failed(holder.task_id, step.name, error)
        return StepResult("failed", error)
    if verdict == "limited":
        again = (found["generation"], found["due_at"], f"limited-{attempt}")
        return StepResult("retry", f"rate limited: {error}", again=again)
    again = (found["generation"], found["due_at"], f"retry-{attempt}")
    return StepResult("retry", f"attempt {attempt} failed: {error}", again=again, priority=found["priority"])


def _check_name(claim_id: uuid.UUID) -> str:
    # One name per claim (the hand-off's, or each check's): the claim that set the next check time
    # schedules it once; the same time reached by two checks still gets two names (Cloud Tasks
    # refuses a name used in the last hour, which would lose the second check).
    return f"check-{claim_id.hex[:16]}"


def apply_handoff(
    conn: sa.Connection, holder: q.Holder, step: pipeline.StepDef, handed: HandedOff, *, first: bool
) -> StepResult:
    """The work goes on outside: the step waits (first hand-off) or keeps waiting; a check is scheduled."""
    assert holder.claim_id is not None  # only a delivery hands off
    timeout = handed.timeout_seconds if handed.timeout_seconds is not None else step.timeout_seconds
    handoff = {"state": handed.state, "usage": handed.usage_on_success} if first else {"state": handed.state}
    found = q.record_handoff(
        conn, holder, first=first, check_after=handed.check_after, timeout=timeout, handoff=handoff
    )
    if found["verdict"] == "lost":
        return _lost()
    if found["verdict"] == "stopped":
        return StepResult("noop", f"the task is {found['task_status']}; the waiting step stops")
    detail = "handed to an outside worker" if first else "the outside work goes on"
    again = (found["generation"], found["due_at"], _check_name(holder.claim_id))
    return StepResult("waiting", detail, again=again, priority=found["priority"])


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
