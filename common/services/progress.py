"""Progress callbacks from outside workers: append a row and update the task, atomically."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from common.errors import Conflict, NotFound
from common.models import ProgressCallback, Task
from common.queries import progress as q
from common.queries.tasks import PROGRESS_FACTS
from common.services.tasks import TERMINAL, to_task

if TYPE_CHECKING:
    from common.runtime import Runtime


def post_progress(rt: Runtime, task_id: uuid.UUID, update: ProgressCallback) -> Task:
    """Record a worker's progress update; a repeated update_id is stored once and answered again.

    A worker may move the phase forward, never back, and never to a terminal state (the model
    accepts phase names only): the pipeline owns the order and the ending. An update that names
    a ``step`` and its ``step_outcome`` ends that waiting step instead (services.step_callbacks).
    """
    if update.step_outcome is not None:
        from common.services.step_callbacks import report_outcome

        return report_outcome(rt, task_id, update)
    params = {
        "status": update.status,
        "percent": update.progress_percent,
        "update_id": update.update_id,
        "message": update.message,
        **update.model_dump(include=set(PROGRESS_FACTS)),
    }
    row = q.record(rt.db.prepared, task_id, params)
    if row is None:
        raise NotFound("no task with that id")
    if row["locked_status"] in TERMINAL:
        raise Conflict(f"the task is already {row['locked_status']}")
    return to_task(row)
