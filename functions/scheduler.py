"""POST /internal/scheduler/tick — the stalled-step reaper and the due jobs, ticked by Cloud Scheduler."""

from __future__ import annotations

from common.http import Call, Reply
from common.services import job_scheduler, reaper


def tick(call: Call) -> Reply:
    result = reaper.tick(call.rt)
    # The wall clock is read here, at the edge; the scheduler itself takes the time it is given.
    jobs = job_scheduler.fire_due_jobs(call.rt, job_scheduler.JobTick(now=call.rt.clock.now()))
    return Reply(result.model_copy(update={"jobs_fired": jobs.fired}))
