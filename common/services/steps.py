"""Running one pipeline step, safely under at-least-once delivery.

The task row lock is the mutex: a delivery claims the step (status running, a fresh claim id,
a lease kept alive by a heartbeat) in one short transaction, runs the provider outside any
transaction, then records the outcome in a second one only if its claim still holds. A duplicate
that arrives meanwhile sees the lease and is told to come back later; one that arrives after
sees a finished step and does nothing. Effects (progress rows, usage) are written only in the
recording transaction, so they happen once per step.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from common import auth, pipeline
from common.config import get_settings
from common.db import run_in_transaction, run_statement
from common.errors import RetryLater
from common.log import get_logger
from common.providers import (
    FACT_COLUMNS,
    StepContext,
    StepFailed,
    StepOutcome,
    StepProvider,
    StepRateLimited,
    StepRefused,
    get_provider,
)
from common.queries import steps as q
from common.queries import tasks as task_q
from common.queries import users as user_q
from common.queue import hand_over
from common.timeutil import iso, utcnow

logger = get_logger("planter.steps")
TERMINAL = ("completed", "failed", "cancelled")
MAX_ERROR_LENGTH = 1000


@dataclass
class StepResult:
    outcome: str  # succeeded | failed | noop | lost | retry
    detail: str = ""
    next: tuple[str, int] | None = field(default=None, repr=False)
    retry_after: float = 0

    def body(self, task_id: str, step: str) -> dict[str, Any]:
        return {"task_id": task_id, "step": step, "outcome": self.outcome, "detail": self.detail}


@dataclass(frozen=True)
class Claim:
    claim_id: uuid.UUID
    attempt: int
    context: StepContext
    user_id: uuid.UUID


class RetryStep(RetryLater):
    """The attempt failed or cannot run yet; Cloud Tasks should deliver it again later."""


def _claim(task_id: uuid.UUID, step: pipeline.StepDef) -> Claim | StepResult:
    timeout = pipeline.timeout(step, get_settings().step_timeout_seconds)

    def work(conn: sa.Connection) -> Claim | StepResult:
        row = q.lock_step(conn, task_id, step.name)
        if row is None:
            return StepResult("noop", "no such task")
        if row["task_status"] in TERMINAL:
            return StepResult("noop", f"the task is {row['task_status']}")
        if row["status"] in ("succeeded", "failed", "skipped"):
            return StepResult("noop", f"the step already {row['status']}")
        if row["earlier_unfinished"]:
            return StepResult("noop", "an earlier step has not finished")
        if row["status"] == "running" and row["leased"]:
            raise RetryStep("the step is running in another delivery", retry_after=int(row["lease_left"]) + 1)
        if row["status"] == "pending" and row["backing_off"]:
            raise RetryStep("the step is backing off before its next attempt", retry_after=int(row["due_in"]) + 1)
        if row["attempts"] >= row["max_attempts"]:
            # The last attempt's run died without recording anything: the attempts are spent.
            fail_task(conn, task_id, step, "the step stopped responding and has no attempts left", row["user_id"])
            return StepResult("failed", "attempts exhausted")
        claim_id = uuid.uuid4()
        attempt = q.claim(conn, task_id, step.name, claim_id, timeout, step.message, step.progress_percent)
        context = StepContext(
            task_id=str(task_id),
            step=step.name,
            attempt=attempt,
            project_name=row["project_name"],
            project_description=row["project_description"],
            mode=row["mode"],
            payload=row["payload"] or {},
            facts={k: row[k] for k in FACT_COLUMNS if row.get(k)},
            callback_token=lambda: auth.issue_callback_token(str(task_id)),
        )
        return Claim(claim_id=claim_id, attempt=attempt, context=context, user_id=row["user_id"])

    return run_in_transaction(work)


def fail_task(conn: sa.Connection, task_id: uuid.UUID, step: pipeline.StepDef, error: str, user_id: uuid.UUID) -> None:
    message = f"Failed while {step.message[0].lower()}{step.message[1:]}"
    percent = q.fail(conn, task_id, step.name, error, message)
    task_q.insert_progress(conn, task_id, update_id="failed", status="failed", message=message, percent=percent)
    logger.warning("task failed", extra={"fields": {"task_id": str(task_id), "step": step.name, "error": error}})


class _Heartbeat:
    """Keeps the claim's lease alive while a provider works; silent for steps shorter than a beat."""

    def __init__(self, task_id: uuid.UUID, step: str, claim_id: uuid.UUID, timeout: float) -> None:
        self._args = (task_id, step, claim_id, timeout)
        self._interval = max(0.5, timeout / 4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"heartbeat-{task_id}")

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if not run_statement(lambda conn: q.heartbeat(conn, *self._args)):
                    return
            except Exception:
                logger.warning("heartbeat failed", exc_info=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


def _still_ours(conn: sa.Connection, task_id: uuid.UUID, step: str, claim: Claim) -> dict[str, Any] | None:
    row = q.lock_step(conn, task_id, step)
    if row is None or row["status"] != "running" or row["claim_id"] != claim.claim_id:
        return None
    return row


def _record_success(task_id: uuid.UUID, step: pipeline.StepDef, claim: Claim, outcome: StepOutcome) -> StepResult:
    facts = {k: outcome.facts.get(k) for k in FACT_COLUMNS}
    period = user_q.billing_period_start(utcnow().date())

    def work(conn: sa.Connection) -> StepResult:
        row = _still_ours(conn, task_id, step.name, claim)
        if row is None:
            return StepResult("lost", "the claim expired and another delivery took the step over")
        result = {"facts": outcome.facts, "usage": outcome.usage, **(outcome.result or {})}
        q.succeed(conn, task_id, step.name, json.dumps(result), "skipped" if outcome.skipped else "succeeded")
        user_q.add_usage(conn, claim.user_id, period, outcome.usage)
        if row["task_status"] in TERMINAL:
            # A terminal task never changes again; what the step created stays in its result.
            return StepResult("succeeded", f"the task was {row['task_status']} meanwhile; not advancing")
        following = pipeline.next_step(step.name)
        if following is not None:
            generation = q.advance(conn, task_id, following.name, facts, outcome.message)
            return StepResult("succeeded", next=(following.name, generation))
        done = q.complete(conn, task_id, facts, pipeline.COMPLETED_MESSAGE)
        task_q.insert_progress(
            conn,
            task_id,
            update_id="completed",
            status="completed",
            message=pipeline.COMPLETED_MESSAGE,
            percent=pipeline.COMPLETED_PERCENT,
            urls=done,
        )
        return StepResult("succeeded", "the task is completed")

    return run_in_transaction(work)


def _record_failure(
    task_id: uuid.UUID, step: pipeline.StepDef, claim: Claim, error: str, cause: Exception | None = None
) -> StepResult:
    usage = cause.usage if isinstance(cause, StepFailed) else {}
    period = user_q.billing_period_start(utcnow().date())

    def work(conn: sa.Connection) -> StepResult:
        row = _still_ours(conn, task_id, step.name, claim)
        if row is None:
            return StepResult("lost", "the claim expired and another delivery took the step over")
        # What a failed attempt consumed (AI calls whose answers were unusable) is metered all the same.
        user_q.add_usage(conn, claim.user_id, period, usage)
        if row["task_status"] in TERMINAL:
            q.fail_step(conn, task_id, step.name, error)
            return StepResult("noop", f"the task was {row['task_status']} meanwhile")
        if isinstance(cause, StepRefused) or claim.attempt >= row["max_attempts"]:
            # A permanent refusal fails at once: retries could not help and would only delay the news.
            fail_task(conn, task_id, step, error, claim.user_id)
            return StepResult("failed", error)
        if isinstance(cause, StepRateLimited):
            # The provider's own time, and the attempt given back: being throttled is not failing.
            q.retry_later(conn, task_id, step.name, error, cause.retry_after, refund=True)
            return StepResult("retry", f"rate limited: {error}", retry_after=cause.retry_after)
        delay = pipeline.backoff(step, claim.attempt)
        q.retry_later(conn, task_id, step.name, error, delay)
        return StepResult("retry", f"attempt {claim.attempt} failed: {error}", retry_after=delay)

    result = run_in_transaction(work)
    if result.outcome == "retry":
        # Raised after commit: the non-2xx answer makes Cloud Tasks deliver the step again.
        raise RetryStep(result.detail, retry_after=int(result.retry_after))
    return result


def _log_attempt(claim: Claim, step: str, outcome: str, provider_ok: bool, started: float) -> None:
    # One line per attempt that ran the provider: with "step claimed", the record of what ran when
    # (the fault run checks from these that no step's provider succeeded twice).
    fields = {
        "task_id": claim.context.task_id,
        "step": step,
        "attempt": claim.attempt,
        "outcome": outcome,
        "provider_ok": provider_ok,
        "seconds": round(time.monotonic() - started, 3),
    }
    logger.info("step attempt", extra={"fields": fields})


def run_step(task_id: uuid.UUID, step_name: str, provider: StepProvider | None = None) -> StepResult:
    """Run one delivery of one step: claim, work, record, hand over the next step."""
    step = pipeline.BY_NAME[step_name]
    claimed = _claim(task_id, step)
    if isinstance(claimed, StepResult):
        return claimed
    logger.info(
        "step claimed",
        extra={
            "fields": {
                "task_id": str(task_id),
                "step": step_name,
                "attempt": claimed.attempt,
                "claimed_at": iso(utcnow()),
            }
        },
    )
    started = time.monotonic()
    provider = provider or get_provider(get_settings().step_provider)
    timeout = pipeline.timeout(step, get_settings().step_timeout_seconds)
    try:
        with _Heartbeat(task_id, step.name, claimed.claim_id, timeout):
            outcome = provider.run(claimed.context)
    except Exception as error:  # any provider failure is one failed attempt, retried with backoff
        logger.warning(
            "step attempt failed", exc_info=True, extra={"fields": {"task_id": str(task_id), "step": step_name}}
        )
        try:
            message = str(error)[:MAX_ERROR_LENGTH] or type(error).__name__
            result = _record_failure(task_id, step, claimed, message, error)
        except RetryStep:
            _log_attempt(claimed, step_name, "retry", False, started)
            raise
        _log_attempt(claimed, step_name, result.outcome, False, started)
        return result
    result = _record_success(task_id, step, claimed, outcome)
    _log_attempt(claimed, step_name, result.outcome, True, started)
    if result.next is not None:
        hand_over(str(task_id), *result.next)
    return result
