"""POST /internal/steps — one pipeline step, delivered by Cloud Tasks."""

from __future__ import annotations

import uuid

from common import log
from common.http import Call, Reply
from common.models import StepRequest
from common.services import steps


def run_step(call: Call) -> Reply:
    body = call.json(StepRequest)
    log.bind(task_id=body.task_id, step=body.step)
    result = steps.run_step(call.rt, uuid.UUID(body.task_id), body.step)
    return Reply(result.body(body.task_id, body.step))
