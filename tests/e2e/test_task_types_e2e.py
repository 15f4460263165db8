"""Every task type end to end through the local stack (functions + the real Cloud Tasks client +
the emulator with one queue per priority + PostgreSQL + the ticking scheduler), and what priority
buys under a backlog of low-priority work."""

from __future__ import annotations

import time
from typing import Any

import pytest

from dev.priority_run import measure
from tests.conftest import TEST_JWT_SECRET
from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e
EMAIL = "types-e2e@example.test"


def start(api: Api, task_type: str, payload: dict[str, Any], priority: str = "normal") -> dict[str, Any]:
    body = {"type": task_type, "payload": payload, "priority": priority}
    response = api.session.post(f"{api.base_url}/api/v1/tasks", json=body, headers=api.headers(EMAIL), timeout=10)
    assert response.status_code == 202, response.text
    task: dict[str, Any] = response.json()
    return task


def test_every_type_runs_to_completion_with_its_result(api: Api) -> None:
    simulate = {"step_seconds": 0.05}
    project = start(api, "create_project", {"project_name": "Typed App", "simulate": simulate}, "high")
    planted = api.wait_terminal(EMAIL, project["task_id"])
    assert planted["status"] == "completed" and planted["priority"] == "high", planted
    assert planted["result"]["repo_url"] == planted["repo_url"]
    ref = {"project_task_id": project["task_id"], "simulate": simulate}

    redeploy = api.wait_terminal(EMAIL, start(api, "redeploy", ref, "low")["task_id"])
    assert redeploy["status"] == "completed", redeploy
    assert redeploy["result"]["deployment_url"] == planted["deployment_url"]

    issues = api.wait_terminal(EMAIL, start(api, "generate_issues", {**ref, "count": 2})["task_id"])
    assert issues["status"] == "completed" and issues["result"]["issues_opened"] == 2, issues

    teardown = api.wait_terminal(EMAIL, start(api, "teardown", ref)["task_id"])
    assert teardown["status"] == "completed", teardown
    assert teardown["result"] == {
        "gcp_project_id": planted["gcp_project_id"],
        "gcp_project": "deleted",
        "repo_url": planted["repo_url"],
        "repository": "archived",
    }
    again = api.wait_terminal(EMAIL, start(api, "teardown", ref)["task_id"])
    assert again["status"] == "completed" and again["result"] == teardown["result"]
    for task in (redeploy, issues, teardown):
        assert all(s["status"] == "succeeded" and s["attempts"] == 1 for s in task["steps"]), task


def test_a_high_priority_task_overtakes_a_low_priority_backlog(api: Api) -> None:
    figures = measure(api.base_url, TEST_JWT_SECRET, backlog=6, step_seconds=0.2, probe_priority="high")
    print(figures.line())
    # The low queue may dispatch 2 at a time, 2 a second; the high one 8 at a time, 20 a second.
    assert figures.backlog_done_before_probe <= 1
    assert figures.probe_seconds < figures.backlog_seconds / 2


def test_an_every_minute_job_fires_once_at_the_minute_under_a_tick_every_second(api: Api) -> None:
    email = "jobs-e2e@example.test"
    body = {
        "name": "every minute",
        "schedule": "* * * * *",
        "task": {"type": "create_project", "payload": {"project_name": "Cron E2E", "simulate": {"step_seconds": 0.05}}},
    }
    created = api.session.post(f"{api.base_url}/api/v1/jobs", json=body, headers=api.headers(email), timeout=10)
    assert created.status_code == 201, created.text
    job = created.json()
    runs_url = f"{api.base_url}/api/v1/jobs/{job['job_id']}/runs"
    deadline = time.monotonic() + 80
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not runs:
        runs = api.session.get(runs_url, headers=api.headers(email), timeout=10).json()["runs"]
        time.sleep(0.5)
    assert len(runs) == 1, "the job did not fire within its minute"
    time.sleep(5)  # five more ticks within the same minute fire nothing more
    runs = api.session.get(runs_url, headers=api.headers(email), timeout=10).json()["runs"]
    fired = api.query("SELECT scheduled_for FROM job_runs WHERE job_id = :j ORDER BY scheduled_for", j=job["job_id"])
    assert len(runs) <= 2 and len(fired) == len(runs)
    assert fired[0]["scheduled_for"].isoformat().replace("+00:00", ".000000Z") == job["next_run"]
    task = api.wait_terminal(email, runs[-1]["task_id"])
    assert task["status"] == "completed" and task["type"] == "create_project", task
    after = api.session.get(f"{api.base_url}/api/v1/jobs/{job['job_id']}", headers=api.headers(email)).json()
    assert after["next_run"] > job["next_run"] and after["last_task_id"] in {r["task_id"] for r in runs}
