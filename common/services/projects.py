"""Starting the create-project pipeline: validation, idempotency, quota, one transaction."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from common.errors import IdempotencyKeyReused, QuotaExceeded
from common.models import CreateProject, Task
from common.pipeline import INITIAL_MESSAGE, STEPS
from common.queries import idempotency as idempotency_q
from common.queries import tasks as task_q
from common.queries import users as user_q
from common.queue import hand_over
from common.services import templates
from common.services.simulate_policy import SimulatePolicy
from common.services.tasks import read_task, to_task
from common.services.users import User

if TYPE_CHECKING:
    from common.runtime import Runtime


@dataclass(frozen=True)
class Created:
    task: Task
    replayed: bool


def _fingerprint(body: CreateProject) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(conn: sa.Connection, user: User, key: str, fingerprint: str) -> uuid.UUID | None:
    """The task an earlier request with this key created, 422 if its body differed, else None."""
    # Serialise requests that share a key, so concurrent ones create one task between them.
    idempotency_q.lock_until_commit(conn, f"{user.id}:{key}")
    row = idempotency_q.find_key(conn, user.id, key)
    if row is None:
        return None
    if not row.live:
        idempotency_q.forget_key(conn, user.id, key)
        return None
    if row.fingerprint != fingerprint:
        raise IdempotencyKeyReused()
    task_id: uuid.UUID = row.task_id
    return task_id


def check_quota(rt: Runtime, conn: sa.Connection, user: User) -> None:
    """429 once this month's AI operations, used or reserved by pipelines in flight, reach the limit:
    the same check for every metered request (new tasks, the assistant's replies).

    Counting only what is metered would let a burst of creations through before any of them ran
    (a free user had 1,290 pipelines accepted that way); each pipeline in flight reserves what its
    remaining steps are expected to use. The new pipeline itself reserves nothing yet, so a user
    below the limit can always start one. Checks of one user are serialised, so concurrent
    creations see each other's reservations.
    """
    idempotency_q.lock_until_commit(conn, f"quota:{user.id}")
    plan = user_q.plan_and_usage(conn, user.id, user_q.billing_period_start(rt.clock.now().date()))
    limit = plan["monthly_operations_limit"]
    if limit == -1:
        return
    used = plan["ai_operations_count"]
    reserved = task_q.in_flight_ai_operations(conn, user.id) if used < limit else 0
    if used + reserved >= limit:
        raise QuotaExceeded(
            f"the {plan['tier']} tier's {limit} AI operations this month are used up"
            f" ({used} used, {reserved} reserved by pipelines in flight)",
            headers={"Retry-After": "3600"},
        )


def create_project(rt: Runtime, user: User, body: CreateProject, idempotency_key: str | None) -> Created:
    """Write the task, its steps and first progress row in one transaction, then enqueue step one."""
    SimulatePolicy.of(rt.settings).check(body.simulate, "simulate")
    fingerprint = _fingerprint(body)
    payload: dict[str, Any] = {"simulate": body.simulate.model_dump()} if body.simulate else {}
    payload.update(templates.github_choices(rt.settings, body))

    def work(conn: sa.Connection) -> tuple[dict[str, Any], bool]:
        if idempotency_key:
            existing = _replay(conn, user, idempotency_key, fingerprint)
            if existing is not None:
                return read_task(conn, existing, user), True
        check_quota(rt, conn, user)
        task_id = uuid.uuid4()
        task_q.insert_task(
            conn,
            task_id=task_id,
            user_id=user.id,
            user_email=user.email,
            project_name=body.project_name,
            project_description=body.project_description,
            mode=body.mode,
            payload=payload,
            message=INITIAL_MESSAGE,
        )
        if idempotency_key:
            idempotency_q.remember_key(conn, user.id, idempotency_key, fingerprint, task_id)
        return read_task(conn, task_id, user), False

    row, replayed = rt.db.transaction(work)
    if not replayed:
        hand_over(rt.enqueuer, str(row["id"]), STEPS[0].name, 0)
    return Created(task=to_task(row), replayed=replayed)
