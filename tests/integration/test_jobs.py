"""Scheduled jobs: the routes, and the scheduler tick with its clock injected (never the wall clock).

The tick is called as the handler calls it, with a JobTick whose ``now`` the test chooses; the
tasks it creates go to the RecordingEnqueuer, and ``drain`` delivers them like the queue would.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from common import db
from common.auth import Identity
from common.models_jobs import CreateJob
from common.models_tasks import CreateTask
from common.runtime import Database, Runtime
from common.services import job_scheduler, jobs
from common.services.users import User, resolve_user
from tests.conftest import RecordingEnqueuer, new_id
from tests.contract import assert_problem
from tests.integration.test_steps import deliver, make_due
from tests.integration.test_task_types import drain, planted

T0 = datetime(2026, 6, 1, 12, 0, 10, tzinfo=UTC)
PROJECT = {"type": "create_project", "payload": {"project_name": "Cron App"}}


def alice(rt: Runtime) -> User:
    return resolve_user(rt, Identity(email="alice@example.test", subject=None))


def new_job(rt: Runtime, now: datetime, schedule: str = "* * * * *", timezone: str = "UTC", task: Any = None) -> str:
    body = CreateJob(name="job", schedule=schedule, timezone=timezone, task=CreateTask(**(task or PROJECT)))
    return jobs.create_job(rt, alice(rt), body, now).job_id


def tick(rt: Runtime, now: datetime) -> job_scheduler.TickOutcome:
    return job_scheduler.fire_due_jobs(rt, job_scheduler.JobTick(now=now))


def racing_ticks(instances: list[Runtime], now: datetime) -> list[job_scheduler.TickOutcome]:
    """One tick per instance, released together."""
    start = threading.Barrier(len(instances))
    outcomes: list[job_scheduler.TickOutcome] = []

    def race(instance: Runtime) -> None:
        start.wait(5)
        outcomes.append(tick(instance, now))

    threads = [threading.Thread(target=race, args=(rt,)) for rt in instances]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return outcomes


def runs(engine: sa.Engine, job_id: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT scheduled_for, task_id, outcome FROM job_runs WHERE job_id = :j ORDER BY scheduled_for"),
            {"j": job_id},
        ).mappings()
        return [dict(r) for r in rows]


def job(rt: Runtime, job_id: str) -> dict[str, Any]:
    return jobs.get_job(rt, uuid.UUID(job_id), alice(rt)).model_dump()


# --- routes ---------------------------------------------------------------------------------------


def test_create_read_list_patch_pause_resume_delete(client: Any, auth_header: Any, enqueued: Any) -> None:
    headers = auth_header()
    body = {"name": "nightly", "schedule": "0 3 * * *", "timezone": "Europe/Paris", "task": PROJECT}
    created = client.post("/api/v1/jobs", json=body, headers=headers)
    assert created.status_code == 201, created.get_json()
    job_id = created.get_json()["job_id"]
    assert created.headers["Location"] == f"/api/v1/jobs/{job_id}"
    got = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
    assert got["status"] == "active" and got["consecutive_failures"] == 0 and got["last_run"] is None
    assert got["next_run"].endswith(("T01:00:00.000000Z", "T02:00:00.000000Z"))  # 03:00 in Paris
    # The payload as its type's schema read it (defaults filled in).
    payload = {"project_name": "Cron App", "project_description": "", "mode": "saas", "private": True}
    assert got["task"] == {"type": "create_project", "payload": payload, "priority": "normal"}
    assert [j["job_id"] for j in client.get("/api/v1/jobs", headers=headers).get_json()["jobs"]] == [job_id]
    patched = client.patch(
        f"/api/v1/jobs/{job_id}", json={"schedule": "30 6 * * *", "timezone": "UTC"}, headers=headers
    )
    assert patched.status_code == 200 and patched.get_json()["next_run"].endswith("T06:30:00.000000Z")
    paused = client.post(f"/api/v1/jobs/{job_id}/pause", headers=headers).get_json()
    assert paused["status"] == "paused" and paused["next_run"] is None
    resumed = client.post(f"/api/v1/jobs/{job_id}/resume", headers=headers).get_json()
    assert resumed["status"] == "active" and resumed["next_run"].endswith("T06:30:00.000000Z")
    assert client.get(f"/api/v1/jobs/{job_id}/runs", headers=headers).get_json() == {"runs": [], "next_cursor": None}
    assert client.delete(f"/api/v1/jobs/{job_id}", headers=headers).status_code == 204
    assert_problem(client.get(f"/api/v1/jobs/{job_id}", headers=headers), 404)


def test_bad_cron_bad_zone_and_bad_payloads_are_422(client: Any, auth_header: Any, enqueued: Any) -> None:
    headers = auth_header()
    base = {"name": "j", "schedule": "* * * * *", "task": PROJECT}
    cases = [
        ({**base, "schedule": "61 * * * *"}, "schedule"),
        ({**base, "schedule": "* * * *"}, "schedule"),
        ({**base, "schedule": "0 0 31 2 *"}, "schedule"),
        ({**base, "timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({**base, "timezone": "../../etc/passwd"}, "timezone"),
        ({**base, "task": {"type": "redeploy", "payload": {}}}, "task.payload.project_task_id"),
        (
            {**base, "task": {"type": "generate_issues", "payload": {"project_task_id": new_id(), "count": 0}}},
            "task.payload.count",
        ),
        ({**base, "name": ""}, "name"),
    ]
    for body, field in cases:
        problem = assert_problem(client.post("/api/v1/jobs", json=body, headers=headers), 422)
        assert field in problem["errors"], (body, problem)
    job_id = client.post("/api/v1/jobs", json=base, headers=headers).get_json()["job_id"]
    problem = assert_problem(client.patch(f"/api/v1/jobs/{job_id}", json={"schedule": "nope"}, headers=headers), 422)
    assert "schedule" in problem["errors"]
    assert client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()["schedule"] == "* * * * *"


def test_other_users_jobs_are_404(client: Any, auth_header: Any, enqueued: Any) -> None:
    body = {"name": "j", "schedule": "* * * * *", "task": PROJECT}
    job_id = client.post("/api/v1/jobs", json=body, headers=auth_header()).get_json()["job_id"]
    mallory = auth_header("mallory@example.test")
    for method, path in (
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/pause"),
        ("POST", "/resume"),
        ("GET", "/runs"),
    ):
        response = client.open(
            f"/api/v1/jobs/{job_id}{path}", method=method, json={} if method == "PATCH" else None, headers=mallory
        )
        assert_problem(response, 404)
    assert client.get("/api/v1/jobs", headers=mallory).get_json()["jobs"] == []
    assert client.get(f"/api/v1/jobs/{job_id}", headers=auth_header()).status_code == 200


def test_a_user_has_at_most_the_documented_number_of_jobs(client: Any, auth_header: Any, enqueued: Any) -> None:
    body = {"name": "j", "schedule": "0 * * * *", "task": PROJECT}
    for _ in range(jobs.MAX_JOBS_PER_USER):
        assert client.post("/api/v1/jobs", json=body, headers=auth_header()).status_code == 201
    assert_problem(client.post("/api/v1/jobs", json=body, headers=auth_header()), 409)
    assert client.post("/api/v1/jobs", json=body, headers=auth_header("bob@example.test")).status_code == 201


# --- the tick ------------------------------------------------------------------------------------


def test_every_minute_fires_once_per_minute_whatever_the_number_of_ticks(
    database_url: str, enqueued: RecordingEnqueuer, engine: sa.Engine, runtime: Runtime
) -> None:
    job_id = new_job(runtime, T0)
    minute = T0.replace(second=0) + timedelta(minutes=1)
    # A second instance: its own engine and pool on the same database, the same queue.
    other_engine = db.create_engine(runtime.settings)
    instances = [runtime, dataclasses.replace(runtime, db=Database(other_engine))]
    try:
        for m in range(3):
            base = minute + timedelta(minutes=m)
            # The minute's first ticks race: two instances at once, on a job that is due.
            outcomes = racing_ticks(instances, base)
            assert sorted(o.fired for o in outcomes) == [0, 1], outcomes
            for second in (0, 5, 20, 40, 59):  # then more ticks within the same minute
                assert tick(instances[second % 2], base + timedelta(seconds=second)).fired == 0
    finally:
        other_engine.dispose()
    fired = runs(engine, job_id)
    assert [r["scheduled_for"] for r in fired] == [minute + timedelta(minutes=m) for m in range(3)]
    assert len({r["task_id"] for r in fired}) == 3 and len(enqueued.calls) == 3
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM tasks")).scalar() == 3
    state = job(runtime, job_id)
    assert state["next_run"] == (minute + timedelta(minutes=3)).isoformat().replace("+00:00", ".000000Z")
    assert state["last_task_id"] == str(fired[-1]["task_id"])


def test_an_overdue_job_fires_once_not_once_per_missed_period(
    database_url: str, enqueued: RecordingEnqueuer, engine: sa.Engine, runtime: Runtime
) -> None:
    job_id = new_job(runtime, T0, "*/5 * * * *")
    late = T0 + timedelta(minutes=47)
    assert tick(runtime, late).fired == 1
    assert tick(runtime, late + timedelta(seconds=1)).fired == 0
    assert len(runs(engine, job_id)) == 1
    assert job(runtime, job_id)["next_run"] == "2026-06-01T12:50:00.000000Z"


def test_pause_stops_it_and_resume_restarts_it_with_no_catch_up(
    database_url: str, enqueued: RecordingEnqueuer, engine: sa.Engine, runtime: Runtime
) -> None:
    job_id = new_job(runtime, T0)
    uid = uuid.UUID(job_id)
    tick(runtime, T0 + timedelta(minutes=1))
    jobs.pause_job(runtime, uid, alice(runtime))
    for m in range(2, 10):
        assert tick(runtime, T0 + timedelta(minutes=m)).fired == 0
    resumed = jobs.resume_job(runtime, uid, alice(runtime), T0 + timedelta(minutes=10))
    assert resumed.next_run == "2026-06-01T12:11:00.000000Z"
    assert tick(runtime, T0 + timedelta(minutes=11)).fired == 1
    assert [r["scheduled_for"].minute for r in runs(engine, job_id)] == [1, 11]


def _fail_runs(client: Any, enqueued: RecordingEnqueuer, engine: sa.Engine, start: int) -> None:
    """Deliver each new run's failing step until its attempts are spent (3 for building_release)."""
    for task_id, step, generation in enqueued.calls[start:]:
        for _attempt in range(3):
            deliver(client, task_id, step, generation)
            make_due(engine, task_id, step)


def test_three_failing_runs_in_a_row_fail_the_job_until_it_is_resumed(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine, runtime: Runtime
) -> None:
    project = planted(client, auth_header(), enqueued)
    simulate = {"fail_step": "building_release", "failures": 100}
    task = {"type": "redeploy", "payload": {"project_task_id": project["task_id"], "simulate": simulate}}
    job_id = new_job(runtime, T0, task=task)
    for m in range(1, 4):
        start = len(enqueued.calls)
        tick(runtime, T0 + timedelta(minutes=m))
        _fail_runs(client, enqueued, engine, start)
    assert job(runtime, job_id)["status"] == "active" and job(runtime, job_id)["consecutive_failures"] == 2
    tick(runtime, T0 + timedelta(minutes=3, seconds=30))  # settles the third run
    state = job(runtime, job_id)
    assert (state["status"], state["consecutive_failures"], state["next_run"]) == ("failed", 3, None)
    assert [r["outcome"] for r in runs(engine, job_id)] == ["failed"] * 3
    assert tick(runtime, T0 + timedelta(minutes=9)).fired == 0
    resumed = jobs.resume_job(runtime, uuid.UUID(job_id), alice(runtime), T0 + timedelta(minutes=10))
    assert (resumed.status, resumed.consecutive_failures) == ("active", 0)
    listed = client.get(f"/api/v1/jobs/{job_id}/runs?limit=2", headers=auth_header()).get_json()
    assert [t["status"] for t in listed["runs"]] == ["failed", "failed"] and listed["next_cursor"]
    rest = client.get(f"/api/v1/jobs/{job_id}/runs?cursor={listed['next_cursor']}", headers=auth_header()).get_json()
    assert len(rest["runs"]) == 1 and rest["next_cursor"] is None


def test_a_completed_run_ends_the_failure_streak_and_quota_refusals_count_as_failures(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine, runtime: Runtime
) -> None:
    job_id = new_job(runtime, T0)
    tick(runtime, T0 + timedelta(minutes=1))
    drain(client, enqueued)
    tick(runtime, T0 + timedelta(minutes=1, seconds=30))
    assert [r["outcome"] for r in runs(engine, job_id)] == ["completed"]
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO subscriptions (user_id, tier, monthly_operations_limit)"
                " SELECT id, 'free', 1 FROM users WHERE email = 'alice@example.test'"
            )
        )
    calls = len(enqueued.calls)
    for m in range(2, 5):
        tick(runtime, T0 + timedelta(minutes=m))
    assert len(enqueued.calls) == calls  # refused: no task, nothing enqueued
    assert [r["outcome"] for r in runs(engine, job_id)] == ["completed", "refused", "refused", "refused"]
    assert job(runtime, job_id)["status"] == "failed"


# --- DST, in the job's zone, with the clock injected ----------------------------------------------


def _fire_times(runtime: Runtime, engine: sa.Engine, schedule: str, zone: str, start: datetime, n: int) -> list[str]:
    """Create the job at ``start`` and tick one second after each next_run, ``n`` times (and again)."""
    job_id = new_job(runtime, start, schedule, zone)
    for _ in range(n):
        due = datetime.fromisoformat(job(runtime, job_id)["next_run"].replace("Z", "+00:00"))
        tick(runtime, due + timedelta(seconds=1))
        tick(runtime, due + timedelta(minutes=59))  # a later tick in the same hour fires nothing
    return [r["scheduled_for"].astimezone(UTC).strftime("%m-%d %H:%M") for r in runs(engine, job_id)]


def test_new_york_spring_forward_fires_once_at_the_next_valid_time(
    database_url: str, enqueued: Any, engine: sa.Engine, runtime: Runtime
) -> None:
    # 2026-03-08 02:00 EST jumps to 03:00 EDT: 02:30 does not exist that day.
    start = datetime(2026, 3, 7, 17, 0, tzinfo=UTC)
    times = _fire_times(runtime, engine, "30 2 * * *", "America/New_York", start, 3)
    assert times == ["03-08 07:00", "03-09 06:30", "03-10 06:30"]


def test_new_york_fall_back_fires_a_repeated_time_once(
    database_url: str, enqueued: Any, engine: sa.Engine, runtime: Runtime
) -> None:
    # 2026-11-01 02:00 EDT falls back to 01:00 EST: 01:30 happens twice that day.
    start = datetime(2026, 10, 31, 16, 0, tzinfo=UTC)
    times = _fire_times(runtime, engine, "30 1 * * *", "America/New_York", start, 3)
    assert times == ["11-01 05:30", "11-02 06:30", "11-03 06:30"]


def test_lord_howe_half_hour_shifts_both_ways(engine: sa.Engine, runtime: Runtime) -> None:
    # Lord Howe moves by 30 minutes: 2026-10-04 02:00 -> 02:30 (+10:30 -> +11), 2026-04-05 02:00 -> 01:30.
    spring = _fire_times(
        runtime, engine, "15 2 * * *", "Australia/Lord_Howe", datetime(2026, 10, 3, 1, 0, tzinfo=UTC), 2
    )
    assert spring == ["10-03 15:30", "10-04 15:15"]  # 02:15 does not exist: once, at 02:30 +11
    autumn = _fire_times(
        runtime, engine, "45 1 * * *", "Australia/Lord_Howe", datetime(2026, 4, 4, 1, 0, tzinfo=UTC), 2
    )
    assert autumn == ["04-04 14:45", "04-05 15:15"]  # 01:45 happens twice: once, the first time


def test_jobs_and_runs_are_listed_page_by_page_runs_newest_first(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, runtime: Runtime
) -> None:
    headers = auth_header()
    made = [new_job(runtime, T0) for _ in range(3)]
    first = client.get("/api/v1/jobs?limit=2", headers=headers).get_json()
    assert len(first["jobs"]) == 2 and first["next_cursor"]
    rest = client.get(f"/api/v1/jobs?limit=2&cursor={first['next_cursor']}", headers=headers).get_json()
    assert rest["next_cursor"] is None
    assert sorted(j["job_id"] for j in first["jobs"] + rest["jobs"]) == sorted(made)
    assert_problem(client.get("/api/v1/jobs?cursor=not-a-cursor", headers=headers), 400)

    for m in (1, 2, 3):
        tick(runtime, T0 + timedelta(minutes=m))
    listed = client.get(f"/api/v1/jobs/{made[0]}/runs", headers=headers).get_json()["runs"]
    created = [t["created_at"] for t in listed]
    assert len(listed) == 3 and created == sorted(created, reverse=True)
    assert all(t["type"] == "create_project" for t in listed)


def test_a_run_is_an_ordinary_task_on_its_priority_queue_that_the_user_can_cancel(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine, runtime: Runtime
) -> None:
    job_id = new_job(runtime, T0, task={**PROJECT, "priority": "high"})
    tick(runtime, T0 + timedelta(minutes=1))
    (run,) = runs(engine, job_id)
    assert enqueued.calls == [(str(run["task_id"]), "creating_org", 0)] and enqueued.priorities == ["high"]
    task = client.get(f"/api/v1/tasks/{run['task_id']}", headers=auth_header()).get_json()
    assert (task["type"], task["priority"], task["project_name"]) == ("create_project", "high", "Cron App")
    cancelled = client.post(f"/api/v1/tasks/{run['task_id']}/cancel", headers=auth_header())
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    tick(runtime, T0 + timedelta(minutes=1, seconds=30))  # settles the run
    assert [r["outcome"] for r in runs(engine, job_id)] == ["cancelled"]
    state = job(runtime, job_id)  # the user's choice: no failure counted
    assert (state["status"], state["consecutive_failures"]) == ("active", 0)
