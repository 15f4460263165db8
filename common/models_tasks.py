"""Request and response bodies of generic tasks and their types (POST /api/v1/tasks, task-types)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from common.models import Model, StrictModel
from common.pipeline import PRIORITIES, TASK_TYPES


class CreateTask(StrictModel):
    type: Literal[TASK_TYPES]  # type: ignore[valid-type]
    payload: dict[str, Any] = Field(description="Validated against the type's payload_schema.")
    priority: Literal[PRIORITIES] = "normal"  # type: ignore[valid-type]


class TaskTypeInfo(Model):
    type: str
    description: str
    payload_schema: dict[str, Any]
    steps: list[str]


class TaskTypes(Model):
    task_types: list[TaskTypeInfo]
