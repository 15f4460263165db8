"""Request and response bodies of scheduled jobs."""

from __future__ import annotations

from pydantic import Field

from common.models import Model, StrictModel, Task
from common.models_tasks import CreateTask


class CreateJob(StrictModel):
    name: str = Field(min_length=1, max_length=100)
    schedule: str = Field(min_length=1, max_length=100, description="5-field cron, in the job's time zone.")
    timezone: str = Field("UTC", min_length=1, max_length=64, description="IANA time zone name.")
    task: CreateTask


class UpdateJob(StrictModel):
    name: str | None = Field(None, min_length=1, max_length=100)
    schedule: str | None = Field(None, min_length=1, max_length=100)
    timezone: str | None = Field(None, min_length=1, max_length=64)
    task: CreateTask | None = None


class Job(Model):
    job_id: str
    name: str
    schedule: str
    timezone: str
    status: str
    task: CreateTask
    last_run: str | None
    next_run: str | None
    last_task_id: str | None
    consecutive_failures: int
    created_at: str
    updated_at: str


class JobList(Model):
    jobs: list[Job]
    next_cursor: str | None


class JobRuns(Model):
    runs: list[Task]
    next_cursor: str | None


class JobListQuery(StrictModel):
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=500)
