"""Liveness through the whole local stack (issue 12): no step holds the queue.

Long steps are handed off and wait (no delivery holds a dispatch slot for them), so a new
pipeline starts and completes while as many long steps run as the queue has slots; a storm of
duplicates on a long step costs other pipelines next to nothing; a cancelled long step stops at
once, and a step running inside its delivery stops at its next heartbeat. The queue is the
Cloud Tasks stand-in with production's concurrency.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import pytest

from common.providers.simulated import INLINE_SECONDS
from dev.local_queues import LOCAL_QUEUE_CONFIG
from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e
# The local queue's dispatch slots: production's (2 instances x concurrency 4).
QUEUE_SLOTS: int = LOCAL_QUEUE_CONFIG["rate_limits"]["max_concurrent_dispatches"]
SHORT = 0.05  # seconds per step of a pipeline that should just go through
LONG = 40.0  # seconds per step: far longer than any of these tests waits


def completes_in(api: Api, email: str, name: str, timeout: float) -> float:
    """Create a short pipeline and wait for it to complete; how long that took."""
    started = time.monotonic()
    task = api.create(email, name, step_seconds=SHORT)
    done = api.wait_terminal(email, task["task_id"], timeout)
    assert done["status"] == "completed", done
    return time.monotonic() - started


def first_step_started_after(api: Api, task_id: str) -> float:
    rows = api.query(
        "SELECT t.created_at, s.started_at FROM tasks t JOIN task_steps s ON s.task_id = t.id"
        " WHERE t.id = :t AND s.name = 'creating_org'",
        t=task_id,
    )
    created: datetime = rows[0]["created_at"]
    started: datetime = rows[0]["started_at"]
    return (started - created).total_seconds()


def cancel_all(api: Api, email: str, tasks: list[dict[str, Any]]) -> None:
    for task in tasks:
        api.cancel(email, task["task_id"])


def test_a_new_pipeline_completes_while_long_steps_fill_every_slot(api: Api) -> None:
    email = "slots@e2e.test"
    long_tasks = [api.create(email, f"Long {i}", step_seconds=LONG) for i in range(QUEUE_SLOTS)]
    try:
        for task in long_tasks:
            api.wait_for(email, task["task_id"], lambda t: t["steps"][0]["status"] == "waiting", 30)
        # Every long step is under way, and none holds a delivery: a new pipeline goes straight through.
        quick = api.create(email, "Quick", step_seconds=SHORT)
        done = api.wait_terminal(email, quick["task_id"], 30)
        assert done["status"] == "completed", done
        assert first_step_started_after(api, quick["task_id"]) < 10
        assert all(api.task(email, t["task_id"])["steps"][0]["status"] == "waiting" for t in long_tasks)
    finally:
        cancel_all(api, email, long_tasks)


def test_a_duplicate_storm_on_a_long_step_does_not_delay_other_pipelines(api: Api) -> None:
    email = "storm@e2e.test"
    baseline = completes_in(api, email, "Before the storm", 30)
    target = api.create(email, "Stormed", step_seconds=LONG)
    api.wait_for(email, target["task_id"], lambda t: t["steps"][0]["status"] == "waiting", 30)
    stop = threading.Event()
    answers: dict[int, int] = {}
    lock = threading.Lock()

    def sender() -> None:  # one of 4: a copy of the long step every 50 ms
        while not stop.is_set():
            status = api.deliver(target["task_id"], "creating_org").status_code
            with lock:
                answers[status] = answers.get(status, 0) + 1
            stop.wait(0.05)

    senders = [threading.Thread(target=sender) for _ in range(4)]
    storm_began = time.monotonic()
    for s in senders:
        s.start()
    try:
        during = [completes_in(api, email, f"During the storm {i}", 30) for i in range(3)]
        time.sleep(max(0.0, 20 - (time.monotonic() - storm_began)))  # the storm lasts 20 s
    finally:
        stop.set()
        for s in senders:
            s.join(30)
        cancel_all(api, email, [target])
    assert set(answers) == {200}, answers  # "not yet" is a 2xx, never a congestion signal
    assert sum(answers.values()) > 100, answers
    assert max(during) < baseline + 5, (baseline, during)
    # The storm ran nothing: the long step was claimed once.
    assert api.task(email, target["task_id"])["steps"][0]["attempts"] == 1


def test_a_cancelled_long_step_stops_at_once_and_holds_no_slot(api: Api) -> None:
    email = "cancel-long@e2e.test"
    task = api.create(email, "Cancelled Long", step_seconds=LONG)
    api.wait_for(email, task["task_id"], lambda t: t["steps"][0]["status"] == "waiting", 30)
    assert api.cancel(email, task["task_id"]).status_code == 200
    # Stopped by the cancel itself, long before the step's own end (its check is due after LONG s).
    stopped = api.wait_for(email, task["task_id"], lambda t: t["steps"][0]["status"] == "skipped", LONG / 4)
    assert stopped["status"] == "cancelled"
    assert [s["status"] for s in stopped["steps"]] == ["skipped"] * len(stopped["steps"])
    assert stopped["steps"][0]["attempts"] == 1 and "cancelled" in (stopped["steps"][0]["error"] or "")
    # It never held a slot: every slot still takes a new pipeline at once.
    quick = [api.create(email, f"After Cancel {i}", step_seconds=SHORT) for i in range(QUEUE_SLOTS)]
    for q in quick:
        assert api.wait_terminal(email, q["task_id"], 30)["status"] == "completed"


def test_a_cancelled_step_running_inside_its_delivery_stops_at_its_next_heartbeat(api: Api) -> None:
    """A step short enough to run inline (INLINE_SECONDS) holds its delivery; a cancel reaches it at
    the heartbeat (every 0.75 s with STEP_TIMEOUT_SECONDS=3), before its 2 s are up: the step is
    stopped (skipped), where a run to its end would have recorded it succeeded."""
    email = "cancel-inline@e2e.test"
    task = api.create(email, "Cancelled Inline", step_seconds=INLINE_SECONDS)
    api.wait_for(email, task["task_id"], lambda t: t["steps"][0]["status"] == "running", 30)
    assert api.cancel(email, task["task_id"]).status_code == 200
    stopped = api.wait_for(email, task["task_id"], lambda t: t["steps"][0]["status"] != "running", 30)
    first = stopped["steps"][0]
    assert stopped["status"] == "cancelled" and first["status"] == "skipped", stopped
    assert "stopped" in (first["error"] or ""), first
