"""A worker's outcome for a waiting step, posted on the progress callback route.

Decided under the task row lock, like a delivery's: an outcome and a scheduled check arriving
together have one effect (whichever takes the lock first ends the step; the other finds it no
longer waiting). A repeated outcome is recognised from the one noted on the step and answered
as before; an outcome for a step that is not waiting is a conflict.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import sqlalchemy as sa

from common import pipeline
from common.errors import Conflict, NotFound
from common.models import ProgressCallback, Task
from common.providers import StepOutcome
from common.queries import steps as q
from common.queries import tasks as task_q
from common.services.step_records import TERMINAL, StepResult, after_commit, apply_failure, apply_success
from common.services.tasks import to_task

if TYPE_CHECKING:
    from common.runtime import Runtime

URL_FACTS = ("org_url", "repo_url", "deployment_url", "gcp_project_id")


def report_outcome(rt: Runtime, task_id: uuid.UUID, update: ProgressCallback) -> Task:
    """End a waiting step with the worker's outcome; the task as it stands afterwards."""
    assert update.step is not None and update.step_outcome is not None  # the model requires them together
    step = pipeline.BY_NAME[update.step]
    outcome: str = update.step_outcome

    def work(conn: sa.Connection) -> StepResult | None:
        row = q.lock_step(conn, task_id, step.name)
        if row is None:
            raise NotFound("no task with that id")
        if row["task_status"] in TERMINAL:
            raise Conflict(f"the task is already {row['task_status']}")
        noted = (row["handoff"] or {}).get("outcome")
        if row["status"] != "waiting":
            if noted == outcome:
                return None  # the same outcome again: already applied
            raise Conflict(f"the step {step.name} is not waiting (it is {row['status']})")
        holder = q.Holder(task_id, step.name, None, "waiting", note=outcome)
        if outcome == "failed":
            return apply_failure(rt, conn, holder, step, row["attempts"], update.error or "the outside work failed")
        handed_off = (row["handoff"] or {}).get("state") or {}
        # The facts the provider noted for success when it handed off (a release id), then the worker's.
        facts = {**(handed_off.get("facts") or {})}
        facts.update({k: v for k in URL_FACTS if (v := getattr(update, k)) is not None})
        usage = dict((row["handoff"] or {}).get("usage") or {})
        # What the provider noted it made when it handed off (build id, log URL...) is the step's result.
        made = handed_off.get("made")
        result = {**made, "service_url": facts.get("deployment_url")} if isinstance(made, dict) else None
        found = StepOutcome(facts=facts, usage=usage, message=update.message, result=result)
        return apply_success(rt, conn, holder, step, found)

    result = rt.db.transaction(work)
    if result is not None:
        after_commit(rt, task_id, step.name, result)
    task = rt.db.statement(lambda conn: task_q.task_by_id(conn, task_id))
    if task is None:
        raise NotFound("no task with that id")
    return to_task(task)
