"""Scheduled jobs, for the browser: thin handlers; the clock is read here, at the edge."""

from __future__ import annotations

from common.http import Call, Reply
from common.models_jobs import CreateJob, JobListQuery, UpdateJob
from common.services import jobs


def create_job(call: Call) -> Reply:
    job = jobs.create_job(call.rt, call.user, call.json(CreateJob), call.rt.clock.now())
    return Reply(job, 201, {"Location": f"/api/v1/jobs/{job.job_id}"})


def list_jobs(call: Call) -> Reply:
    query = call.query(JobListQuery)
    return Reply(jobs.list_jobs(call.rt, call.user, limit=query.limit, cursor=query.cursor))


def get_job(call: Call) -> Reply:
    return Reply(jobs.get_job(call.rt, call.uuid_param("job_id"), call.user))


def update_job(call: Call) -> Reply:
    body = call.json(UpdateJob)
    job_id = call.uuid_param("job_id")
    return Reply(jobs.update_job(call.rt, job_id, call.user, body, call.rt.clock.now()))


def pause_job(call: Call) -> Reply:
    return Reply(jobs.pause_job(call.rt, call.uuid_param("job_id"), call.user))


def resume_job(call: Call) -> Reply:
    return Reply(jobs.resume_job(call.rt, call.uuid_param("job_id"), call.user, call.rt.clock.now()))


def delete_job(call: Call) -> Reply:
    jobs.delete_job(call.rt, call.uuid_param("job_id"), call.user)
    return Reply(None, 204)


def job_runs(call: Call) -> Reply:
    query = call.query(JobListQuery)
    return Reply(jobs.job_runs(call.rt, call.uuid_param("job_id"), call.user, limit=query.limit, cursor=query.cursor))
