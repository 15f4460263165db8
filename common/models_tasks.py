"""Request and response bodies of generic tasks and their types (POST /api/v1/tasks, task-types)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from common.models import Model, StrictModel

TaskTypeName = Literal["create_project", "redeploy", "generate_issues", "teardown"]
Priority = Literal["low", "normal", "high"]


class CreateTask(StrictModel):
    type: TaskTypeName
    payload: dict[str, Any] = Field(description="Validated against the type's payload_schema.")
    priority: Priority = "normal"


class TaskTypeInfo(Model):
    type: str
    description: str
    payload_schema: dict[str, Any]
    steps: list[str]


class TaskTypes(Model):
    task_types: list[TaskTypeInfo]
