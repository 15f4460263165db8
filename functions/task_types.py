"""POST /api/v1/tasks (a task of any type) and GET /api/v1/task-types."""

from __future__ import annotations

from common.http import Call, Reply
from common.models_tasks import CreateTask, TaskTypeInfo, TaskTypes
from common.services import task_create
from common.task_types import TYPES
from functions.projects import idempotency_key


def create_task(call: Call) -> Reply:
    spec = task_create.validate(call.json(CreateTask), call.rt.settings)
    created = task_create.create_task(call.rt, call.user, spec, idempotency_key(call))
    return Reply(created.task, 202, {"Location": f"/api/v1/tasks/{created.task.task_id}"})


def list_task_types(call: Call) -> Reply:
    return Reply(
        TaskTypes(
            task_types=[
                TaskTypeInfo(
                    type=t.name,
                    description=t.description,
                    payload_schema=t.payload_model.model_json_schema(),
                    steps=t.step_names,
                )
                for t in TYPES.values()
            ]
        )
    )
