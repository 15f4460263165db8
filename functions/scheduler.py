"""POST /internal/scheduler/tick — the stalled-step reaper, ticked by Cloud Scheduler."""

from __future__ import annotations

from common.http import Call, Reply
from common.services import reaper


def tick(call: Call) -> Reply:
    return Reply(reaper.tick())
