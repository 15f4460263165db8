"""Scheduled jobs: create, read, list, change, pause, resume, delete, and the tasks they made.

Every function takes ``now`` from its caller (the handler reads the clock at the edge), so tests
and the scheduler decide what time it is.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from common import cron
from common.errors import Conflict, NotFound
from common.models_jobs import CreateJob, Job, JobList, JobRuns, UpdateJob
from common.models_tasks import CreateTask
from common.queries import jobs as q
from common.services import task_create
from common.services.tasks import decode_cursor, encode_cursor, to_task
from common.services.users import User

if TYPE_CHECKING:
    from common.runtime import Runtime

# The per-user cap on jobs (docs/API.md): beyond it, creating one answers 409.
MAX_JOBS_PER_USER = 20


def to_job(row: dict[str, Any]) -> Job:
    return Job(
        job_id=str(row["id"]),
        name=row["name"],
        schedule=row["schedule"],
        timezone=row["timezone"],
        status=row["status"],
        task=CreateTask(type=row["task_type"], payload=row["task_payload"], priority=row["task_priority"]),
        last_run=row["last_run"],
        next_run=row["next_run"],
        last_task_id=str(row["last_task_id"]) if row["last_task_id"] else None,
        consecutive_failures=row["consecutive_failures"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _read(conn: sa.Connection, job_id: uuid.UUID, user: User, *, lock: bool = False) -> dict[str, Any]:
    row = q.get_job(conn, job_id, user.id, lock=lock)
    if row is None:
        raise NotFound("no job with that id")
    return row


def create_job(rt: Runtime, user: User, body: CreateJob, now: datetime) -> Job:
    """Check the schedule, zone and task (422), the cap (409); the job's first run is its next time."""
    first = cron.next_run(body.schedule, body.timezone, now)
    spec = task_create.validate(body.task, rt.settings, field="task.payload")
    job_id = uuid.uuid4()

    def work(conn: sa.Connection) -> dict[str, Any]:
        if q.lock_user_jobs(conn, user.id) >= MAX_JOBS_PER_USER:
            raise Conflict(f"a user may have at most {MAX_JOBS_PER_USER} jobs; delete one first")
        q.insert_job(
            conn,
            id=job_id,
            user_id=user.id,
            name=body.name,
            schedule=body.schedule,
            timezone=body.timezone,
            task_type=spec.task_type.name,
            task_payload=spec.payload_json,
            task_priority=spec.priority,
            next_run=first,
        )
        return _read(conn, job_id, user)

    return to_job(rt.db.transaction(work))


def get_job(rt: Runtime, job_id: uuid.UUID, user: User) -> Job:
    return to_job(rt.db.statement(lambda conn: _read(conn, job_id, user)))


def list_jobs(rt: Runtime, user: User, *, limit: int, cursor: str | None) -> JobList:
    after = decode_cursor(rt, cursor, user) if cursor else None
    rows = rt.db.statement(lambda conn: q.list_jobs(conn, user.id, limit + 1, after))
    page, more = rows[:limit], len(rows) > limit
    next_cursor = encode_cursor(rt, page[-1]["created_at_raw"], page[-1]["id"], user) if more else None
    return JobList(jobs=[to_job(r) for r in page], next_cursor=next_cursor)


def _fields(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "schedule", "timezone", "status", "task_type", "task_payload", "task_priority")
    return {
        **{k: row[k] for k in keys},
        "next_run": row["next_run_raw"],
        "consecutive_failures": row["consecutive_failures"],
    }


def _change(rt: Runtime, job_id: uuid.UUID, user: User, change: Any) -> Job:
    def work(conn: sa.Connection) -> dict[str, Any]:
        row = _read(conn, job_id, user, lock=True)
        q.update_job(conn, job_id, change(row, _fields(row)))
        return _read(conn, job_id, user)

    return to_job(rt.db.transaction(work))


def update_job(rt: Runtime, job_id: uuid.UUID, user: User, body: UpdateJob, now: datetime) -> Job:
    """Change any of name, schedule, timezone, task; an active job's next_run is recomputed from now."""
    spec = task_create.validate(body.task, rt.settings, field="task.payload") if body.task else None

    def change(row: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        if body.name is not None:
            fields["name"] = body.name
        fields["schedule"] = body.schedule if body.schedule is not None else row["schedule"]
        fields["timezone"] = body.timezone if body.timezone is not None else row["timezone"]
        following = cron.next_run(fields["schedule"], fields["timezone"], now)  # 422 before any write
        if spec is not None:
            fields.update(task_type=spec.task_type.name, task_payload=spec.payload_json, task_priority=spec.priority)
        if row["status"] == "active":
            fields["next_run"] = following
        return fields

    return _change(rt, job_id, user, change)


def pause_job(rt: Runtime, job_id: uuid.UUID, user: User) -> Job:
    def change(row: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        if row["status"] == "failed":
            raise Conflict("the job has failed; resume it instead")
        return {**fields, "status": "paused", "next_run": None}

    return _change(rt, job_id, user, change)


def resume_job(rt: Runtime, job_id: uuid.UUID, user: User, now: datetime) -> Job:
    """Active again (also from failed) with the next time from now: no catch-up of what was missed."""

    def change(row: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        following = cron.next_run(row["schedule"], row["timezone"], now)
        return {**fields, "status": "active", "next_run": following, "consecutive_failures": 0}

    return _change(rt, job_id, user, change)


def delete_job(rt: Runtime, job_id: uuid.UUID, user: User) -> None:
    """Delete the job; the tasks it made stay (their runs go with the job)."""
    if not rt.db.transaction(lambda conn: q.delete_job(conn, job_id, user.id)):
        raise NotFound("no job with that id")


def job_runs(rt: Runtime, job_id: uuid.UUID, user: User, *, limit: int, cursor: str | None) -> JobRuns:
    after = decode_cursor(rt, cursor, user) if cursor else None

    def work(conn: sa.Connection) -> list[dict[str, Any]]:
        _read(conn, job_id, user)
        return q.list_runs(conn, job_id, limit + 1, after)

    rows = rt.db.transaction(work)
    page, more = rows[:limit], len(rows) > limit
    next_cursor = encode_cursor(rt, page[-1]["scheduled_for_raw"], page[-1]["id"], user) if more else None
    return JobRuns(runs=[to_task(r) for r in page], next_cursor=next_cursor)
