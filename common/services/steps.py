"""Running one pipeline step, safely under at-least-once delivery.

The task row lock is the mutex: a delivery claims the step (status running, a fresh claim id,
a lease kept alive by a heartbeat) in one call of a server-side function, runs the provider
outside any transaction, then records the outcome in a second call only if its claim still
holds (queries.steps). Effects (progress rows, usage) are written only by the recording call,
so they happen once per step.

No delivery holds the queue: a provider either finishes quickly or hands the work off (the step
is then `waiting`, and a scheduled delivery of the same step checks on it). A delivery that finds
nothing to do yet (a duplicate of a running step, a step backing off, a check not yet due, a step
whose predecessor has not finished) answers 2xx at once: whoever set the step's due time has
scheduled the delivery for it, and the reaper covers one that is lost.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from common import auth, pipeline
from common.log import get_logger
from common.providers import FACT_COLUMNS, HandedOff, StepContext, StepOutcome, StepProvider
from common.queries import steps as q
from common.services.step_records import (
    NO_ATTEMPTS_LEFT,
    StepResult,
    after_commit,
    apply_failure,
    apply_handoff,
    apply_success,
    failure_message,
    log_outcome,
    log_task_failed,
    needs_transaction,
)
from common.timeutil import iso

if TYPE_CHECKING:
    from common.runtime import Runtime

logger = get_logger("planter.steps")
MAX_ERROR_LENGTH = 1000
# How long a check in flight holds a waiting step before another check may start.
CHECK_HOLD_SECONDS = 30.0

__all__ = ["StepResult", "run_step"]


@dataclass(frozen=True)
class Claim:
    claim_id: uuid.UUID
    attempt: int
    context: StepContext
    user_id: uuid.UUID
    checking: bool  # a scheduled check of a waiting step, not a new attempt


def _context(
    rt: Runtime, task_id: uuid.UUID, step: pipeline.StepDef, row: dict[str, object], attempt: int
) -> StepContext:
    handoff = row.get("handoff") or {}
    return StepContext(
        task_id=str(task_id),
        step=step.name,
        attempt=attempt,
        project_name=str(row["project_name"]),
        project_description=str(row["project_description"]),
        mode=str(row["mode"]),
        payload=row["payload"] or {},  # type: ignore[arg-type]
        facts={k: row[k] for k in FACT_COLUMNS if row.get(k)},
        callback_token=lambda: auth.issue_callback_token(str(task_id), rt.settings, rt.clock.time()),
        handoff=dict(handoff.get("state") or {}) if isinstance(handoff, dict) else {},
    )


# Why a delivery's claim found nothing to do, by the claim's verdict (queries.steps.claim_step).
_NOTHING_TO_DO: dict[str, Callable[[dict[str, Any]], str]] = {
    "no_task": lambda row: "no such task",
    "stopped": lambda row: f"the task is {row['task_status']}; the waiting step stops",
    "terminal": lambda row: f"the task is {row['task_status']}",
    "finished": lambda row: f"the step already {row['status']}",
    "earlier_unfinished": lambda row: "an earlier step has not finished; its success hands this one over",
    "running": lambda row: f"the step is running in another delivery (lease {row['lease_left']:.0f} s)",
    "backing_off": lambda row: f"the step is backing off until {iso(row['due_at'])}; a retry is scheduled",
    "check_not_due": lambda row: f"the step waits for outside work; next check at {iso(row['due_at'])}",
}


def _claim(rt: Runtime, task_id: uuid.UUID, step: pipeline.StepDef) -> Claim | StepResult:
    """One call: a new attempt (pending and due, or a run or outside work that outlived its lease),
    a check of a waiting step, the task failed (the last attempt's run died without recording
    anything), or a no-op saying why."""
    claim_id = uuid.uuid4()
    row = rt.db.statement(
        lambda conn: q.claim_step(
            conn,
            task_id,
            step.name,
            claim_id,
            timeout=pipeline.timeout(step, rt.settings.step_timeout_seconds),
            message=step.message,
            percent=step.progress_percent,
            hold=CHECK_HOLD_SECONDS,
            fail_error=NO_ATTEMPTS_LEFT,
            fail_message=failure_message(step),
        )
    )
    verdict = row["verdict"]
    if verdict in ("claimed", "check"):
        context = _context(rt, task_id, step, row, row["attempt"])
        return Claim(claim_id, row["attempt"], context, row["user_id"], checking=verdict == "check")
    if verdict == "exhausted":
        log_task_failed(task_id, step.name, NO_ATTEMPTS_LEFT)
        return StepResult("failed", "attempts exhausted")
    return StepResult("noop", _NOTHING_TO_DO[verdict](row))


def _record(
    rt: Runtime, task_id: uuid.UUID, step: pipeline.StepDef, claim: Claim, found: StepOutcome | HandedOff | Exception
) -> StepResult:
    """Record what the provider said, if the claim still holds."""
    holder = q.Holder(task_id, step.name, claim.claim_id, "waiting" if claim.checking else "running")
    if claim.checking and not isinstance(found, HandedOff):
        # A worker reporting the same outcome later gets a no-op 200, not a 409.
        holder = replace(holder, note="failed" if isinstance(found, Exception) else "succeeded")

    def work(conn: sa.Connection) -> StepResult:
        if isinstance(found, HandedOff):
            return apply_handoff(conn, holder, step, found, first=not claim.checking)
        if isinstance(found, Exception):
            error = str(found)[:MAX_ERROR_LENGTH] or type(found).__name__
            return apply_failure(rt, conn, holder, step, claim.attempt, error, found)
        return apply_success(rt, conn, holder, step, found)

    return rt.db.transaction(work) if needs_transaction(step, found) else rt.db.statement(work)


def _log_attempt(claim: Claim, step: str, outcome: str, provider_ok: bool | None, started: float) -> None:
    # One line per attempt that ran the provider to an end: with "step claimed", the record of what
    # ran when (the fault run checks from these that no step's provider succeeded twice). A hand-off
    # ends the delivery, not the attempt: provider_ok is None until a check or a worker settles it.
    fields = {
        "task_id": claim.context.task_id,
        "step": step,
        "attempt": claim.attempt,
        "outcome": outcome,
        "provider_ok": provider_ok,
        "seconds": round(time.monotonic() - started, 3),
    }
    logger.info("step attempt", extra={"fields": fields})


def run_step(rt: Runtime, task_id: uuid.UUID, step_name: str, provider: StepProvider | None = None) -> StepResult:
    """Run one delivery of one step: claim, work (or check on outside work), record, hand over."""
    step = pipeline.BY_NAME[step_name]
    claimed = _claim(rt, task_id, step)
    if isinstance(claimed, StepResult):
        log_outcome(task_id, step_name, claimed)
        return claimed
    fields = {"task_id": str(task_id), "step": step_name, "attempt": claimed.attempt, "claimed_at": iso(rt.clock.now())}
    logger.info("step check claimed" if claimed.checking else "step claimed", extra={"fields": fields})
    started = time.monotonic()
    provider = provider or rt.providers.get()
    timeout = pipeline.timeout(step, rt.settings.step_timeout_seconds)
    found: StepOutcome | HandedOff | Exception
    # A check needs no heartbeat: it holds the waiting step through its due time (claim_check).
    beating = (
        contextlib.nullcontext()
        if claimed.checking
        else rt.heartbeats.keep(
            task_id,
            step_name,
            claimed.claim_id,
            timeout=timeout,
            expected=step.expected_seconds,
            stop=claimed.context.stop,
        )
    )
    try:
        with beating:
            found = provider.check(claimed.context) if claimed.checking else provider.run(claimed.context)
    except Exception as error:  # any provider failure is one failed attempt, retried with backoff
        logger.warning(
            "step attempt failed", exc_info=True, extra={"fields": {"task_id": str(task_id), "step": step_name}}
        )
        found = error
    result = _record(rt, task_id, step, claimed, found)
    if not (isinstance(found, HandedOff) and claimed.checking):  # a check that found "not yet" ends nothing
        provider_ok = None if isinstance(found, HandedOff) else not isinstance(found, Exception)
        _log_attempt(claimed, step_name, result.outcome, provider_ok, started)
    after_commit(rt, task_id, step_name, result)
    return result
