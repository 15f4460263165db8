"""POST /api/v1/tasks/{task_id}/progress — progress callbacks from outside workers."""

from __future__ import annotations

from common.http import Call, Reply
from common.models import ProgressCallback
from common.services import progress


def post_progress(call: Call) -> Reply:
    return Reply(progress.post_progress(call.rt, call.uuid_param("task_id"), call.json(ProgressCallback)))
