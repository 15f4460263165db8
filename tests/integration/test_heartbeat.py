"""The process's one heartbeat thread, against a real PostgreSQL: leases kept alive, a cancelled
task's run told to stop, a long run reported."""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from common import pipeline
from common.runtime import Runtime
from common.services.heartbeat import Heartbeats
from tests.integration.test_steps import create, deliver, execute, step_rows


def running(engine: sa.Engine, task_id: str, claim_id: uuid.UUID, lease_seconds: int) -> None:
    execute(
        engine,
        """UPDATE task_steps SET status = 'running', attempts = 1, claim_id = :c,
               lease_expires_at = now() + make_interval(secs => :s) WHERE task_id = :t AND name = 'creating_org'""",
        t=task_id,
        c=claim_id,
        s=lease_seconds,
    )


def wait_until(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_one_thread_keeps_every_running_claim_alive_and_stops_a_cancelled_one(
    client: Any, auth_header: Any, engine: sa.Engine, caplog: pytest.LogCaptureFixture, runtime: Runtime
) -> None:
    beats = Heartbeats(runtime.db, name="heartbeat-under-test")
    tasks = [create(client, auth_header(), f"Beat {i}")["task_id"] for i in range(3)]
    claims = [uuid.uuid4() for _ in tasks]
    stops = [threading.Event() for _ in tasks]
    for task_id, claim_id in zip(tasks, claims, strict=True):
        running(engine, task_id, claim_id, 2)
    first = {t: step_rows(engine, t)["creating_org"]["lease_expires_at"] for t in tasks}
    caplog.set_level(logging.WARNING, logger="planter.steps")
    with (
        beats.keep(uuid.UUID(tasks[0]), "creating_org", claims[0], timeout=2, expected=0.1, stop=stops[0]),
        beats.keep(uuid.UUID(tasks[1]), "creating_org", claims[1], timeout=2, expected=0.1, stop=stops[1]),
        beats.keep(uuid.UUID(tasks[2]), "creating_org", claims[2], timeout=2, expected=60, stop=stops[2]),
    ):
        # Every lease moves on (beats every 0.5 s), all from one thread.
        wait_until(lambda: all(step_rows(engine, t)["creating_org"]["lease_expires_at"] > first[t] for t in tasks), 5)
        assert sum(1 for t in threading.enumerate() if t.name == "heartbeat-under-test") == 1
        # The user cancels the second task: its run is told to stop at the next beat; the others go on.
        assert client.post(f"/api/v1/tasks/{tasks[1]}/cancel", headers=auth_header()).status_code == 200
        wait_until(stops[1].is_set, 5)
        # Past twice the first run's expected time (and at least two beats), it is reported once.
        wait_until(lambda: any(r.getMessage() == "step runs long" for r in caplog.records), 10)
        assert not stops[0].is_set() and not stops[2].is_set()
        assert step_rows(engine, tasks[0])["creating_org"]["lease_expires_at"] > first[tasks[0]]
    messages = [(r.getMessage(), getattr(r, "fields", {}).get("task_id")) for r in caplog.records]
    assert ("step run stopped: its task ended", tasks[1]) in messages
    assert ("step runs long", tasks[0]) in messages and ("step runs long", tasks[2]) not in messages
    # After the runs end nothing beats for them any more (a beat already under way may land first).
    time.sleep(0.3)
    ended = {t: step_rows(engine, t)["creating_org"]["lease_expires_at"] for t in tasks}
    time.sleep(1.0)
    assert {t: step_rows(engine, t)["creating_org"]["lease_expires_at"] for t in tasks} == ended


def test_running_steps_starts_no_thread_of_its_own(client: Any, auth_header: Any) -> None:
    # Every thread started while a pipeline runs is noted from inside it (threading.setprofile is
    # installed in each new thread); the process's heartbeat thread may start once, nothing else.
    started: list[str] = []

    def note(frame: Any, event: str, arg: Any) -> None:
        started.append(threading.current_thread().name)
        sys.setprofile(None)

    task = create(client, auth_header(), name="No Threads")
    threading.setprofile(note)
    try:
        for step in pipeline.STEPS:
            assert deliver(client, task["task_id"], step.name).get_json()["outcome"] == "succeeded"
    finally:
        threading.setprofile(None)
    assert started in ([], ["heartbeat"]), started
