"""The scheduler tick's job part: settle finished runs, then fire every due active job once.

At most once per scheduled time: a due job is locked (SKIP LOCKED, so concurrent ticks share the
work) and its run is a row keyed (job_id, scheduled_for): a second tick, a duplicate or another
instance finds the key taken and creates nothing. No catch-up: the next time is the first one
after *now*, so a job overdue by several periods fires once. The clock is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from common import cron
from common.errors import PlanterError
from common.log import get_logger
from common.models_tasks import CreateTask
from common.queries import jobs as q
from common.queue import hand_over
from common.services import task_create
from common.services.users import User

if TYPE_CHECKING:
    from common.runtime import Runtime

logger = get_logger("planter.jobs")
MAX_CONSECUTIVE_FAILURES = 3
BATCH = 100


@dataclass(frozen=True)
class JobTick:
    """What one tick needs: the time (injected)."""

    now: datetime


@dataclass(frozen=True)
class TickOutcome:
    fired: int
    refused: int
    settled: int


def _settle(conn: sa.Connection) -> int:
    settled = q.settle_runs(conn)
    for run in settled:
        q.count_outcome(conn, run["job_id"], run["outcome"], MAX_CONSECUTIVE_FAILURES)
    return len(settled)


def fire_due_jobs(rt: Runtime, tick: JobTick) -> TickOutcome:
    """Settle ended runs and fire due jobs in one transaction; enqueue the new tasks after commit."""
    to_enqueue: list[tuple[str, str, str]] = []
    refused = 0

    def work(conn: sa.Connection) -> int:
        nonlocal refused
        settled = _settle(conn)
        for job in q.lock_due(conn, tick.now, BATCH):
            if not _fire(rt, conn, job, tick, to_enqueue):
                refused += 1
        return settled

    settled = rt.db.transaction(work)
    for task_id, step, priority in to_enqueue:
        hand_over(rt.enqueuer, task_id, step, 0, priority)
    if to_enqueue or refused:
        logger.info("jobs fired", extra={"fields": {"fired": len(to_enqueue), "refused": refused}})
    return TickOutcome(fired=len(to_enqueue), refused=refused, settled=settled)


def _fire(
    rt: Runtime, conn: sa.Connection, job: dict[str, Any], tick: JobTick, to_enqueue: list[tuple[str, str, str]]
) -> bool:
    """Run one locked due job: its task (or its refusal: False), and its next time after now."""
    job_id = job["id"]
    scheduled_for = job["next_run_raw"]
    following = cron.next_run(job["schedule"], job["timezone"], max(tick.now, scheduled_for))
    if not q.claim_run(conn, job_id, scheduled_for):
        # Fired already for this time (a tick that committed after this one read the job).
        q.fired(conn, job_id, scheduled_for, following, None)
        return True
    user = User(id=job["user_id"], email=job["user_email"])
    request = CreateTask(type=job["task_type"], payload=job["task_payload"], priority=job["task_priority"])
    try:
        with conn.begin_nested():  # a refusal leaves nothing half-written
            spec = task_create.validate(request, rt.settings)
            task_id = task_create.create_in(rt, conn, user, spec)
    except PlanterError as refusal:  # quota, the project gone or in the wrong state, a stale payload
        q.set_run(conn, job_id, scheduled_for, None, refusal.detail)
        q.fired(conn, job_id, scheduled_for, following, None)
        q.count_outcome(conn, job_id, "refused", MAX_CONSECUTIVE_FAILURES)
        logger.info("job run refused", extra={"fields": {"job_id": str(job_id), "reason": refusal.detail}})
        return False
    q.set_run(conn, job_id, scheduled_for, task_id, None)
    q.fired(conn, job_id, scheduled_for, following, task_id)
    to_enqueue.append((str(task_id), task_create.first_step(spec), spec.priority))
    return True
