"""Request and response bodies, declared once; validation and the OpenAPI document use them."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from common.pipeline import ALL_STEP_NAMES, PHASES, PRIORITIES, TASK_TYPES

_SLUG_STRIP = re.compile(r"[^a-z0-9._-]+")


def slugify(name: str) -> str:
    """The repository name a project name becomes: lowercase, dashes, GitHub's character set."""
    slug = _SLUG_STRIP.sub("-", name.strip().lower()).strip("-.")
    return re.sub(r"-{2,}", "-", slug)[:100]


class Model(BaseModel):
    # Validators are built on first use, not at import: each function builds only the models it
    # serves, which keeps cold starts short (the route table names every model).
    model_config = ConfigDict(defer_build=True)


class StrictModel(Model):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, defer_build=True)


class Simulation(StrictModel):
    """Knobs of the simulated step provider (local development and tests only)."""

    step_seconds: float = Field(0.0, ge=0, le=600, description="How long each step takes.")
    fail_step: Literal[ALL_STEP_NAMES] | None = Field(None, description="The step that fails.")  # type: ignore[valid-type]
    failures: int = Field(0, ge=0, le=100, description="How many times it fails before it succeeds.")


class CreateProject(StrictModel):
    project_name: str = Field(min_length=1, max_length=100)
    project_description: str = Field("", max_length=5000)
    mode: Literal["saas", "user"] = "saas"
    simulate: Simulation | None = None
    template: str | None = Field(
        None, max_length=200, description="One of GET /api/v1/templates (owner/repo); default: the first."
    )
    github_owner: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$",
        description="Mode user: the GitHub organization where Planter's App is installed.",
    )
    private: bool = Field(True, description="Whether the new repository is private.")

    @field_validator("project_name")
    @classmethod
    def _slugifies(cls, value: str) -> str:
        slug = slugify(value)
        if not slug or slug.endswith(".git") or slug in {".", ".."}:
            raise ValueError("must contain letters or digits that make a valid repository name")
        return value


class Step(Model):
    name: str
    status: Literal["pending", "running", "waiting", "succeeded", "failed", "skipped"]
    attempts: int
    started_at: str | None
    finished_at: str | None
    error: str | None
    result: dict[str, Any] | None = Field(None, description="What the step made (repository, commit, issues...).")


class Task(Model):
    task_id: str
    type: str
    project_name: str
    project_description: str
    mode: str
    status: str
    progress_percent: int
    message: str
    current_step: str | None
    org_url: str | None
    repo_url: str | None
    deployment_url: str | None
    gcp_project_id: str | None
    error_message: str | None
    created_at: str
    updated_at: str
    completed_at: str | None
    failed_at: str | None
    cancelled_at: str | None
    steps: list[Step]
    priority: Literal[PRIORITIES]  # type: ignore[valid-type]
    payload: dict[str, Any] = Field(description="The task's payload, as given.")
    result: dict[str, Any] | None = Field(description="What the task made; set when it completes.")
    error: str | None = Field(description="Why it failed (the same text as error_message).")


class TaskList(Model):
    tasks: list[Task]
    next_cursor: str | None


class ProgressEntry(Model):
    status: str
    message: str
    progress_percent: int
    org_url: str | None
    repo_url: str | None
    deployment_url: str | None
    timestamp: str


class ProgressList(Model):
    task_id: str
    progress: list[ProgressEntry]


HttpUrl = Annotated[str, Field(max_length=2048, pattern=r"^https?://[^\s/$.?#][^\s]*$")]


class ProgressCallback(StrictModel):
    update_id: str | None = Field(None, min_length=1, max_length=200)
    status: Literal[PHASES] | None = None  # type: ignore[valid-type]
    message: str = Field(max_length=2000)
    progress_percent: int | None = Field(None, ge=0, le=100, strict=True)  # not "50", not true
    org_url: HttpUrl | None = None
    repo_url: HttpUrl | None = None
    deployment_url: HttpUrl | None = None
    gcp_project_id: str | None = Field(None, pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
    # The outcome of a waiting step's outside work (see docs/API.md, "Waiting steps").
    step: Literal[ALL_STEP_NAMES] | None = Field(None, description="The waiting step this outcome ends.")  # type: ignore[valid-type]
    step_outcome: Literal["succeeded", "failed"] | None = None
    error: str | None = Field(None, min_length=1, max_length=1000, description="Why the outside work failed.")

    @model_validator(mode="after")
    def _outcome_names_its_step(self) -> ProgressCallback:
        if (self.step is None) != (self.step_outcome is None):
            raise ValueError("step and step_outcome are given together")
        if self.error is not None and self.step_outcome != "failed":
            raise ValueError("error goes with step_outcome 'failed'")
        return self


class StepRequest(StrictModel):
    task_id: str = Field(pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
    step: Literal[ALL_STEP_NAMES]  # type: ignore[valid-type]
    generation: int = Field(0, ge=0)


class TickResult(Model):
    reenqueued: int
    failed: int
    jobs_fired: int = 0


class Health(Model):
    status: str
    database: str
    standins: dict[str, str] | None = Field(None, description="Local stand-ins in use (name → base URL).")


class Problem(Model):
    type: str
    title: str
    status: int
    detail: str
    errors: dict[str, str] | None = None


class TaskListQuery(StrictModel):
    status: Literal["active", "completed", "failed", "cancelled"] | None = None
    type: Literal[TASK_TYPES] | None = None  # type: ignore[valid-type]
    priority: Literal[PRIORITIES] | None = None  # type: ignore[valid-type]
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=500)


class DashboardQuery(StrictModel):
    tz: str = Field("UTC", max_length=64, description="IANA time zone where days and weeks begin.")


class ActiveTask(Model):
    task_id: str
    project_name: str
    status: str
    message: str
    progress_percent: int
    created_at: str
    updated_at: str
    repo_url: str | None
    org_url: str | None
    deployment_url: str | None
    current_step: str | None
    estimated_completion_at: str | None


class ActiveTasks(Model):
    active_tasks: list[ActiveTask]
    total_active: int
    total_completed_today: int
    total_failed_today: int


class ProjectHealth(Model):
    health_score: int
    tasks_completed_today: int
    tasks_completed_this_week: int
    tasks_failed_this_week: int
    success_rate_30d: float | None
    active_tasks: int
    avg_completion_minutes: float | None
    stuck_tasks: int


class CostMetrics(Model):
    total_ai_operations: int
    monthly_operations_limit: int
    operations_used_percent: float
    estimated_monthly_cost: float
    cost_per_operation: float
    projects_created_count: int


class Metrics(Model):
    user_email: str
    subscription_tier: str
    project_health: ProjectHealth
    cost_metrics: CostMetrics
    timestamp: str


class TypedDashboardQuery(DashboardQuery):
    type: Literal[TASK_TYPES] | None = Field(  # type: ignore[valid-type]
        None, description="Only tasks of this type (default: all)."
    )


class TimeSeriesQuery(TypedDashboardQuery):
    metric: Literal[
        "tasks_created", "tasks_completed", "tasks_failed", "success_rate", "avg_duration_minutes", "ai_operations"
    ]
    period: Literal["hourly", "daily", "weekly"] = "daily"
    days: int = Field(30, ge=1, le=90)


class DataPoint(Model):
    timestamp: str
    value: float


class TimeSeries(Model):
    metric_name: str
    period: str
    unit: str
    data_points: list[DataPoint]
