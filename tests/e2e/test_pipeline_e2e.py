"""The pipeline end to end: functions + the real google-cloud-tasks client + the queue stand-in +
PostgreSQL, with the scheduler ticking every second. Faults are real: processes are killed and
PostgreSQL is restarted under running pipelines."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from common import pipeline
from dev.stack import LocalStack
from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e
STEPS = pipeline.STEP_NAMES
PHASES = ["initializing", *STEPS, "completed"]
PERCENTS = [0, 10, 25, 40, 60, 75, 90, 100]
# What one completed pipeline meters: AI operations, projects created, issues generated.
ONE_PIPELINE_USAGE = (sum(s.ai_operations for s in pipeline.STEPS), 1, 5)
# What common.http logs when it answers 500.
_UNEXPECTED = ("unhandled error", "unexpected database error")


def errors_logged_since(stack: LocalStack, offset: int) -> list[dict[str, Any]]:
    """Lines the functions logged as unexpected (answered 500) after ``offset`` bytes of their log."""
    assert stack.log_path is not None
    entries: list[dict[str, Any]] = []
    with stack.log_path.open("rb") as log:
        log.seek(offset)
        for line in log:
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue  # gunicorn's own lines, or one cut short by a SIGKILL
    return [e for e in entries if isinstance(e, dict) and e.get("message") in _UNEXPECTED]


@pytest.fixture(autouse=True)
def functions_running(stack: LocalStack) -> Iterator[None]:
    """Every test starts with the functions up, and ends with no request answered 500 meanwhile."""
    if stack.functions is None:
        stack.start_functions()
    assert stack.log_path is not None
    offset = stack.log_path.stat().st_size
    yield
    assert errors_logged_since(stack, offset) == []


def steps_of(task: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in task["steps"]}


def step_running(name: str) -> Any:
    return lambda task: steps_of(task)[name]["status"] == "running"


def assert_completed_once(api: Api, task: dict[str, Any], attempts: dict[str, int] | None = None) -> None:
    """Completed, every phase shown once and in order, each step with the attempts expected."""
    assert task["status"] == "completed", task
    assert task["completed_at"] and not task["failed_at"] and not task["cancelled_at"]
    assert task["progress_percent"] == 100
    rows = api.progress(task["task_id"])
    assert [r["status"] for r in rows] == PHASES
    assert [r["progress_percent"] for r in rows] == PERCENTS
    expected = {name: 1 for name in STEPS} | (attempts or {})
    assert {s["name"]: (s["status"], s["attempts"]) for s in task["steps"]} == {
        name: ("succeeded", n) for name, n in expected.items()
    }


def test_a_pipeline_completes_with_every_phase_once_and_in_order(api: Api) -> None:
    email = "complete@e2e.test"
    task = api.create(email, "Complete App", step_seconds=0.2)
    # Watch it go by: the phases observed are in pipeline order, never backwards.
    seen: list[str] = []
    percents: list[int] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = api.task(email, task["task_id"])
        if not seen or seen[-1] != now["status"]:
            seen.append(now["status"])
        percents.append(now["progress_percent"])
        if now["status"] == "completed":
            break
        time.sleep(0.05)
    assert seen == [p for p in PHASES if p in seen], seen
    assert percents == sorted(percents)
    done = api.task(email, task["task_id"])
    assert_completed_once(api, done)
    assert done["repo_url"] == "https://github.com/planter-projects/complete-app"
    assert done["org_url"] and done["deployment_url"] and done["gcp_project_id"]
    assert api.usage(email) == ONE_PIPELINE_USAGE


def test_duplicate_deliveries_sequential_and_concurrent_change_nothing(api: Api) -> None:
    email = "duplicates@e2e.test"
    task = api.create(email, "Duplicate App", step_seconds=0.5)
    answers: list[int] = []
    lock = threading.Lock()

    def copy(step: str, generation: int) -> None:
        response = api.deliver(task["task_id"], step, generation)
        with lock:
            answers.append(response.status_code)

    # While it runs: four simultaneous copies of the current step, and one of the previous.
    duplicated: set[str] = set()
    threads: list[threading.Thread] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = api.task(email, task["task_id"])
        step = now["current_step"]
        if now["status"] == "completed":
            break
        if step and step not in duplicated:
            duplicated.add(step)
            previous = STEPS[max(0, STEPS.index(step) - 1)]
            batch = [threading.Thread(target=copy, args=(step, g)) for g in (0, 0, 1, 5)]
            batch.append(threading.Thread(target=copy, args=(previous, 0)))
            for t in batch:
                t.start()
            threads.extend(batch)
        time.sleep(0.05)
    for t in threads:
        t.join(30)
    assert len(duplicated) >= 4, duplicated  # the copies really raced the running pipeline
    # Each copy ran the step, or found it held by another delivery or done: a 2xx either way ("not
    # yet" is no congestion signal to the queue).
    assert set(answers) == {200}, answers
    done = api.wait_terminal(email, task["task_id"], 30)
    assert_completed_once(api, done)
    # After the end: every step delivered again, one after another, in both orders.
    before = (api.progress(task["task_id"]), api.task(email, task["task_id"]), api.usage(email))
    for step in (*STEPS, *reversed(STEPS)):
        response = api.deliver(task["task_id"], step, 0)
        assert response.status_code == 200
        assert response.json()["outcome"] == "noop"
    after = (api.progress(task["task_id"]), api.task(email, task["task_id"]), api.usage(email))
    assert after == before
    assert api.usage(email) == ONE_PIPELINE_USAGE


def test_transient_failures_are_retried_and_counted(api: Api) -> None:
    email = "transient@e2e.test"
    task = api.create(email, "Transient App", fail_step="customizing_project", failures=2)
    done = api.wait_terminal(email, task["task_id"], 60)
    assert_completed_once(api, done, attempts={"customizing_project": 3})
    assert steps_of(done)["customizing_project"]["error"] is None
    assert api.usage(email) == ONE_PIPELINE_USAGE


def test_exhausted_retries_fail_the_task_cleanly_within_a_minute(api: Api) -> None:
    email = "exhausted@e2e.test"
    started = time.monotonic()
    task = api.create(email, "Exhausted App", fail_step="creating_gcp_project", failures=50)
    failed = api.wait_terminal(email, task["task_id"], 60)
    assert time.monotonic() - started < 60
    assert failed["status"] == "failed", failed
    assert failed["failed_at"] and not failed["completed_at"]
    assert "creating_gcp_project" in failed["error_message"]
    assert "simulated failure" in failed["error_message"]
    steps = steps_of(failed)
    limit = pipeline.BY_NAME["creating_gcp_project"].max_attempts
    assert steps["creating_gcp_project"]["status"] == "failed"
    assert steps["creating_gcp_project"]["attempts"] == limit
    assert [steps[s]["status"] for s in STEPS[:3]] == ["succeeded"] * 3
    assert all(steps[s]["status"] == "skipped" and steps[s]["attempts"] == 0 for s in STEPS[4:])
    rows = api.progress(task["task_id"])
    assert [r["status"] for r in rows] == ["initializing", *STEPS[:4], "failed"]
    customization = pipeline.BY_NAME["customizing_project"].ai_operations
    assert api.usage(email) == (customization, 1, 0)  # what the succeeded steps metered, nothing more
    # It stays failed: the queue has nothing left to retry, the reaper nothing to revive.
    settle = time.monotonic() + 3
    while time.monotonic() < settle:
        assert api.task(email, task["task_id"]) == failed
        time.sleep(0.25)


def test_cancel_stops_the_pipeline_at_the_next_step_boundary(api: Api) -> None:
    email = "cancel@e2e.test"
    task = api.create(email, "Cancel App", step_seconds=1.0)
    api.wait_for(email, task["task_id"], step_running("forking_template"), 30)
    response = api.cancel(email, task["task_id"])
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    # The running step may finish; nothing after it starts, through several scheduler ticks.
    observe_until = time.monotonic() + 4
    while time.monotonic() < observe_until:
        now = api.task(email, task["task_id"])
        assert now["status"] == "cancelled" and now["cancelled_at"] and not now["completed_at"]
        assert all(steps_of(now)[s]["attempts"] == 0 for s in STEPS[2:])
        time.sleep(0.2)
    final = api.wait_for(email, task["task_id"], lambda t: all(s["status"] != "running" for s in t["steps"]), 15)
    steps = steps_of(final)
    assert steps["creating_org"]["status"] == "succeeded"
    assert steps["forking_template"]["status"] in ("succeeded", "skipped")
    assert all(steps[s]["status"] == "skipped" and steps[s]["started_at"] is None for s in STEPS[2:])
    assert [r["status"] for r in api.progress(task["task_id"])] == [
        "initializing",
        "creating_org",
        "forking_template",
        "cancelled",
    ]
    assert api.cancel(email, task["task_id"]).status_code == 409


def test_a_functions_crash_mid_step_is_recovered(api: Api, stack: LocalStack) -> None:
    email = "crash@e2e.test"
    task = api.create(email, "Crash App", step_seconds=2)  # the longest step run inline (longer ones wait)
    api.wait_for(email, task["task_id"], step_running("forking_template"), 30)
    stack.kill_functions()  # SIGKILL mid-step: no answer, no cleanup, the lease left to expire
    stack.start_functions()
    done = api.wait_terminal(email, task["task_id"], 90)
    # The interrupted attempt is counted; its effects were never recorded, the retry's once.
    assert_completed_once(api, done, attempts={"forking_template": 2})
    assert api.usage(email) == ONE_PIPELINE_USAGE


def test_the_reaper_alone_recovers_a_crash_whose_delivery_was_lost(api: Api, stack: LocalStack) -> None:
    email = "reaper@e2e.test"
    task = api.create(email, "Reaper App", step_seconds=2)
    api.wait_for(email, task["task_id"], step_running("creating_gcp_project"), 60)
    stack.kill_functions()
    stack.restart_queue(forget=True)  # the queue's memory is gone: no redelivery will come
    stack.start_functions()
    done = api.wait_terminal(email, task["task_id"], 90)
    assert_completed_once(api, done, attempts={"creating_gcp_project": 2})
    # Only the reaper hands a step over under a new generation.
    rows = api.query(
        "SELECT generation FROM task_steps WHERE task_id = :t AND name = 'creating_gcp_project'", t=task["task_id"]
    )
    assert rows[0]["generation"] >= 1
    assert api.usage(email) == ONE_PIPELINE_USAGE


def test_every_pipeline_completes_through_postgres_restarts(api: Api, stack: LocalStack) -> None:
    email = "restart@e2e.test"
    tasks = [api.create(email, f"Restart App {i}", step_seconds=0.3) for i in range(4)]
    api.wait_for(email, tasks[0]["task_id"], lambda t: t["progress_percent"] >= 25, 30)
    stack.restart_postgres()
    api.wait_for(email, tasks[-1]["task_id"], lambda t: t["progress_percent"] >= 40, 60)
    stack.restart_postgres()
    for task in tasks:
        done = api.wait_terminal(email, task["task_id"], 90)
        assert done["status"] == "completed", done
        rows = api.progress(task["task_id"])
        assert [r["status"] for r in rows] == PHASES
        assert all(s["status"] == "succeeded" for s in done["steps"])
    assert api.usage(email) == tuple(4 * n for n in ONE_PIPELINE_USAGE)
    # The API answers again as before.
    health = requests.get(f"{stack.base_url}/healthz", timeout=5).json()
    assert (health["status"], health["database"]) == ("ok", "ok")
    # While the database was away, every request was answered 503 (retry), none 500: checked
    # for every test by functions_running.
