"""POST /internal/steps — one pipeline step, delivered by Cloud Tasks."""

from __future__ import annotations

import uuid
from typing import Any

from common import log
from common.http import Call, Reply
from common.models import StepRequest
from common.services import steps
from common.timeutil import iso


def run_step(call: Call) -> Reply:
    body = call.json(StepRequest)
    log.bind(task_id=body.task_id, step=body.step)
    result = steps.run_step(call.rt, uuid.UUID(body.task_id), body.step)
    answer: dict[str, Any] = {"task_id": body.task_id, "step": body.step, "outcome": result.outcome}
    answer["detail"] = result.detail
    if result.again is not None:  # when Planter delivers this step again (a retry, a check)
        answer["next_delivery_at"] = iso(result.again[1])
    return Reply(answer)
