"""Starting a task of any type: the payload checked against its type, the project it works on,
idempotency and quota as for projects, one transaction, then its first step on its priority's queue.

``create_in`` is the part inside the transaction; the scheduler's job runs use it too, so a job's
run is an ordinary task (same checks, same quota, same priority).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic import BaseModel, ValidationError

from common.config import Settings
from common.errors import Conflict, NotFound, ValidationFailed
from common.models import CreateProject
from common.models_tasks import CreateTask
from common.pipeline import INITIAL_MESSAGE
from common.queries import idempotency as idempotency_q
from common.queries import task_types as type_q
from common.queries import tasks as task_q
from common.queue import hand_over
from common.services import templates
from common.services.projects import Created, _replay, check_quota
from common.services.simulate_policy import SimulatePolicy
from common.services.tasks import read_task, to_task
from common.services.users import User
from common.task_types import TYPES, TaskType

if TYPE_CHECKING:
    from common.runtime import Runtime


@dataclass(frozen=True)
class TaskSpec:
    """A validated request for a task: its type, its payload (as given) and its priority."""

    task_type: TaskType
    payload: BaseModel
    priority: str

    @property
    def payload_json(self) -> dict[str, Any]:
        dumped: dict[str, Any] = self.payload.model_dump(mode="json", exclude_none=True)
        return dumped


def validate(request: CreateTask, settings: Settings, field: str = "payload") -> TaskSpec:
    """The request checked against its type's payload schema and this deployment's choices (simulate,
    a create_project's template and owner, as the shorthand checks them): 422 naming the field at
    fault (under ``field``: "payload" for a task, "task.payload" for a job's task)."""
    task_type = TYPES[request.type]
    try:
        payload = task_type.payload_model.model_validate(request.payload)
    except ValidationError as error:
        errors: dict[str, str] = {}
        for item in error.errors(include_url=False):
            errors.setdefault(".".join([field, *(str(p) for p in item["loc"])]), item["msg"])
        raise ValidationFailed(f"the payload is not valid for a {request.type} task", errors=errors) from None
    SimulatePolicy.of(settings).check(getattr(payload, "simulate", None), f"{field}.simulate")
    if isinstance(payload, CreateProject):
        try:
            templates.github_choices(settings, payload)
        except ValidationFailed as refused:
            errors = {f"{field}.{name}": why for name, why in (refused.errors or {}).items()}
            raise ValidationFailed(refused.detail, errors=errors) from None
    return TaskSpec(task_type=task_type, payload=payload, priority=request.priority)


def _project_facts(conn: sa.Connection, user: User, spec: TaskSpec) -> dict[str, Any]:
    """The project task the spec works on, checked: 404 unknown or not the caller's, 409 wrong state."""
    allowed = spec.task_type.project_states
    project_task_id = getattr(spec.payload, "project_task_id", None)
    if allowed is None or project_task_id is None:
        payload = spec.payload_json
        return {
            "project_name": payload["project_name"],
            "project_description": payload.get("project_description", ""),
            "mode": payload.get("mode", "saas"),
        }
    row = type_q.project_task(conn, uuid.UUID(project_task_id), user.id)
    if row is None or row["type"] != "create_project":
        raise NotFound("no project task with that id")
    if row["status"] not in allowed:
        raise Conflict(
            f"a {spec.task_type.name} task needs a project task that is {' or '.join(allowed)};"
            f" this one is {row['status']}"
        )
    if spec.task_type.needs_standing_project and type_q.torn_down(conn, row["id"], user.id):
        raise Conflict(f"the project was torn down; a {spec.task_type.name} task needs it standing")
    return row


def create_in(rt: Runtime, conn: sa.Connection, user: User, spec: TaskSpec) -> uuid.UUID:
    """Check the project and the quota, then write the task; the caller enqueues after commit."""
    project = _project_facts(conn, user, spec)
    check_quota(rt, conn, user)
    task_id = uuid.uuid4()
    payload = spec.payload_json
    task_q.insert_task(
        conn,
        task_id=task_id,
        user_id=user.id,
        user_email=user.email,
        project_name=project["project_name"],
        project_description=project["project_description"],
        mode=project["mode"],
        # create_project keeps what the shorthand keeps (simulate); its name and mode have columns.
        payload=payload if spec.task_type.project_states is not None else _create_project_payload(payload),
        message=INITIAL_MESSAGE,
        steps=spec.task_type.steps,
        task_type=spec.task_type.name,
        priority=spec.priority,
        facts=project if spec.task_type.project_states is not None else None,
    )
    return task_id


def _create_project_payload(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in ("project_name", "project_description", "mode")}


def first_step(spec: TaskSpec) -> str:
    return spec.task_type.steps[0].name


def _fingerprint(spec: TaskSpec) -> str:
    body = {"type": spec.task_type.name, "payload": spec.payload_json, "priority": spec.priority}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def create_task(rt: Runtime, user: User, spec: TaskSpec, idempotency_key: str | None) -> Created:
    """Write the task (or find the one this Idempotency-Key made), then enqueue its first step."""
    fingerprint = _fingerprint(spec)

    def work(conn: sa.Connection) -> tuple[dict[str, Any], bool]:
        if idempotency_key:
            existing = _replay(conn, user, idempotency_key, fingerprint)
            if existing is not None:
                return read_task(conn, existing, user), True
        task_id = create_in(rt, conn, user, spec)
        if idempotency_key:
            idempotency_q.remember_key(conn, user.id, idempotency_key, fingerprint, task_id)
        return read_task(conn, task_id, user), False

    row, replayed = rt.db.transaction(work)
    if not replayed:
        hand_over(rt.enqueuer, str(row["id"]), first_step(spec), 0, spec.priority)
    return Created(task=to_task(row), replayed=replayed)
