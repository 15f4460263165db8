"""POST /internal/steps and the scheduler tick against a real PostgreSQL, through the gateway.

Cloud Tasks is replaced by the RecordingEnqueuer: each test delivers the steps itself, signed
as the queue would sign them, so duplicate, late and concurrent deliveries can be staged exactly.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from common import pipeline
from common.auth import SIGNATURE_HEADER, sign_body
from common.config import Settings
from common.queue import step_body
from common.runtime import Runtime
from tests.conftest import TEST_STEP_SECRET, RecordingEnqueuer

STEPS = pipeline.STEP_NAMES
AI_PER_PIPELINE = sum(s.ai_operations for s in pipeline.STEPS)  # what the simulated provider meters


# --- helpers -----------------------------------------------------------------------------------
def create(client: Any, headers: dict[str, str], name: str = "Steps App", **simulate: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"project_name": name, "project_description": "a test project"}
    if simulate:
        body["simulate"] = simulate
    response = client.post("/api/v1/projects", json=body, headers=headers)
    assert response.status_code == 202, response.get_json()
    task: dict[str, Any] = response.get_json()
    return task


def deliver(client: Any, task_id: str, step: str, generation: int = 0, secret: str = TEST_STEP_SECRET) -> Any:
    """One delivery of a step, exactly as the queue sends it."""
    body = step_body(task_id, step, generation)
    return client.post(
        "/internal/steps",
        data=body,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign_body(body, secret)},
    )


def tick(client: Any) -> dict[str, Any]:
    body = b"{}"
    response = client.post(
        "/internal/scheduler/tick",
        data=body,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign_body(body, TEST_STEP_SECRET)},
    )
    assert response.status_code == 200, response.get_json()
    # The reaper's part of the tick (jobs_fired, the scheduled jobs' part, is tested in test_jobs.py).
    result: dict[str, Any] = {k: v for k, v in response.get_json().items() if k != "jobs_fired"}
    return result


def read(client: Any, headers: dict[str, str], task_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/tasks/{task_id}", headers=headers)
    assert response.status_code == 200
    task: dict[str, Any] = response.get_json()
    return task


def steps_of(task: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in task["steps"]}


def progress_rows(engine: sa.Engine, task_id: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT update_id, status, progress_percent, message FROM task_progress WHERE task_id = :t ORDER BY id"
            ),
            {"t": task_id},
        ).all()
    return [tuple(r) for r in rows]


def step_rows(engine: sa.Engine, task_id: str) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM task_steps WHERE task_id = :t"), {"t": task_id}).mappings().all()
    return {r["name"]: dict(r) for r in rows}


def usage(engine: sa.Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT u.email, g.ai_operations_count, g.projects_created, g.issues_generated"
                " FROM usage g JOIN users u ON u.id = g.user_id ORDER BY u.email"
            )
        ).all()
    return [tuple(r) for r in rows]


def task_row(engine: sa.Engine, task_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT * FROM tasks WHERE id = :t"), {"t": task_id}).mappings().one())


def execute(engine: sa.Engine, sql: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def make_due(engine: sa.Engine, task_id: str, step: str) -> None:
    """Skip the backoff wait: what the passing of time would do."""
    execute(engine, "UPDATE task_steps SET due_at = now() WHERE task_id = :t AND name = :s", t=task_id, s=step)


def run_all(client: Any, task_id: str) -> list[Any]:
    """Deliver every step once, in order, as the queue would after each handover."""
    return [deliver(client, task_id, step) for step in STEPS]


# --- the caller must be our queue -------------------------------------------------------------
def test_unsigned_and_mis_signed_deliveries_are_refused(client: Any, auth_header: Any, engine: sa.Engine) -> None:
    task = create(client, auth_header())
    body = step_body(task["task_id"], "creating_org", 0)
    unsigned = client.post("/internal/steps", data=body, headers={"Content-Type": "application/json"})
    wrong_key = deliver(client, task["task_id"], "creating_org", secret="another-secret-of-the-same-length-000000")
    other_body = client.post(
        "/internal/steps",
        data=body,
        headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_body(step_body(task["task_id"], "deploying", 0), TEST_STEP_SECRET),
        },
    )
    for response in (unsigned, wrong_key, other_body):
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
    # None of them ran anything.
    assert step_rows(engine, task["task_id"])["creating_org"]["attempts"] == 0
    assert read(client, auth_header(), task["task_id"])["status"] == "initializing"
    tick_unsigned = client.post("/internal/scheduler/tick", data=b"{}", headers={"Content-Type": "application/json"})
    assert tick_unsigned.status_code == 401


def test_a_signed_delivery_with_a_malformed_task_id_is_422(client: Any) -> None:
    for task_id in ("0" * 36, "-" * 36, "not-a-uuid"):
        body = json.dumps({"task_id": task_id, "step": "creating_org"}).encode()
        response = client.post(
            "/internal/steps",
            data=body,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign_body(body, TEST_STEP_SECRET)},
        )
        assert response.status_code == 422, task_id
        assert "task_id" in response.get_json()["errors"]


# --- the happy path -------------------------------------------------------------------------
def test_a_step_runs_records_progress_and_hands_over(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    task = create(client, auth_header())
    assert enqueued.calls == [(task["task_id"], "creating_org", 0)]
    response = deliver(client, task["task_id"], "creating_org")
    assert response.status_code == 200
    assert response.get_json()["outcome"] == "succeeded"
    assert enqueued.calls[-1] == (task["task_id"], "forking_template", 0)
    after = read(client, auth_header(), task["task_id"])
    assert after["status"] == "creating_org"
    assert after["progress_percent"] == 10
    assert after["org_url"] == "https://github.com/planter-projects"
    first = steps_of(after)["creating_org"]
    assert first["status"] == "succeeded" and first["attempts"] == 1
    assert first["started_at"] and first["finished_at"]
    assert steps_of(after)["forking_template"]["status"] == "pending"
    assert [r[0] for r in progress_rows(engine, task["task_id"])] == ["initializing", "step:creating_org"]


def test_a_whole_pipeline_completes_with_every_phase_once_in_order(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    task = create(client, auth_header(), "Whole Pipeline")
    outcomes = [r.get_json()["outcome"] for r in run_all(client, task["task_id"])]
    assert outcomes == ["succeeded"] * len(STEPS)
    done = read(client, auth_header(), task["task_id"])
    assert done["status"] == "completed"
    assert done["progress_percent"] == 100
    assert done["completed_at"] is not None and done["current_step"] is None
    assert done["repo_url"] == "https://github.com/planter-projects/whole-pipeline"
    assert done["deployment_url"] and done["gcp_project_id"]
    assert all(s["status"] == "succeeded" and s["attempts"] == 1 for s in done["steps"])
    rows = progress_rows(engine, task["task_id"])
    assert [r[1] for r in rows] == ["initializing", *STEPS, "completed"]
    assert [r[2] for r in rows] == [0, 10, 25, 40, 60, 75, 90, 100]
    # One handover per step after the first, and nothing after the last one.
    assert [c[1] for c in enqueued.calls] == list(STEPS)
    assert usage(engine) == [("alice@example.test", AI_PER_PIPELINE, 1, 5)]


# --- duplicates, late deliveries, cancellation ------------------------------------------------
def test_redelivering_finished_steps_changes_nothing(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    task = create(client, auth_header())
    run_all(client, task["task_id"])
    before = (
        progress_rows(engine, task["task_id"]),
        step_rows(engine, task["task_id"]),
        usage(engine),
        task_row(engine, task["task_id"]),
        list(enqueued.calls),
    )
    for step in (*STEPS, *reversed(STEPS)):
        for generation in (0, 3):
            response = deliver(client, task["task_id"], step, generation)
            assert response.status_code == 200
            assert response.get_json()["outcome"] == "noop"
    after = (
        progress_rows(engine, task["task_id"]),
        step_rows(engine, task["task_id"]),
        usage(engine),
        task_row(engine, task["task_id"]),
        list(enqueued.calls),
    )
    assert after == before


def test_a_duplicate_of_a_finished_step_mid_pipeline_is_a_noop(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    task = create(client, auth_header())
    deliver(client, task["task_id"], "creating_org")
    deliver(client, task["task_id"], "forking_template")
    snapshot = (progress_rows(engine, task["task_id"]), step_rows(engine, task["task_id"]), usage(engine))
    calls = len(enqueued.calls)
    again = deliver(client, task["task_id"], "forking_template")
    assert again.status_code == 200 and again.get_json()["outcome"] == "noop"
    assert (progress_rows(engine, task["task_id"]), step_rows(engine, task["task_id"]), usage(engine)) == snapshot
    assert len(enqueued.calls) == calls  # no second handover of the next step
    assert usage(engine) == [("alice@example.test", 0, 1, 0)]


def test_an_early_delivery_of_a_later_step_does_not_run_it(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    task = create(client, auth_header())
    response = deliver(client, task["task_id"], "deploying")
    assert response.status_code == 200 and response.get_json()["outcome"] == "noop"
    rows = step_rows(engine, task["task_id"])
    assert all(r["attempts"] == 0 and r["status"] == "pending" for r in rows.values())
    assert len(enqueued.calls) == 1


def test_a_step_for_an_unknown_task_is_a_noop(client: Any) -> None:
    response = deliver(client, str(uuid.uuid4()), "creating_org")
    assert response.status_code == 200
    assert response.get_json()["outcome"] == "noop"


def test_a_step_for_a_cancelled_task_is_a_noop(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    task = create(client, auth_header())
    deliver(client, task["task_id"], "creating_org")
    cancelled = client.post(f"/api/v1/tasks/{task['task_id']}/cancel", headers=auth_header())
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    before = (progress_rows(engine, task["task_id"]), step_rows(engine, task["task_id"]), usage(engine))
    calls = len(enqueued.calls)
    for step in STEPS:
        response = deliver(client, task["task_id"], step)
        assert 200 <= response.status_code < 300
        assert response.get_json()["outcome"] == "noop"
    assert (progress_rows(engine, task["task_id"]), step_rows(engine, task["task_id"]), usage(engine)) == before
    assert len(enqueued.calls) == calls
    after = read(client, auth_header(), task["task_id"])
    assert after["status"] == "cancelled"
    assert [s["status"] for s in after["steps"]] == ["succeeded"] + ["skipped"] * (len(STEPS) - 1)


def test_a_cancel_during_a_running_step_stops_at_the_boundary(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    task = create(client, auth_header(), step_seconds=1.0)
    result: dict[str, Any] = {}
    own_client = client.application.test_client()
    runner = threading.Thread(target=lambda: result.update(r=deliver(own_client, task["task_id"], "creating_org")))
    runner.start()
    deadline = time.monotonic() + 10
    while step_rows(engine, task["task_id"])["creating_org"]["status"] != "running":
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    cancel = client.post(f"/api/v1/tasks/{task['task_id']}/cancel", headers=auth_header())
    assert cancel.status_code == 200
    cancelled = cancel.get_json()
    runner.join(15)
    assert result["r"].status_code == 200
    after = read(client, auth_header(), task["task_id"])
    assert after["status"] == "cancelled" and after["completed_at"] is None
    # A terminal task never changes again: the step's late result stays on the step only.
    assert after["org_url"] is None and after["updated_at"] == cancelled["updated_at"]
    assert step_rows(engine, task["task_id"])["creating_org"]["result"]["facts"]["org_url"]
    assert [s["status"] for s in after["steps"]] == ["succeeded"] + ["skipped"] * (len(STEPS) - 1)
    assert enqueued.calls == [(task["task_id"], "creating_org", 0)]  # the next step was not handed over
    assert progress_rows(engine, task["task_id"])[-1][1] == "cancelled"


# --- failures, retries, exhaustion ------------------------------------------------------------
def test_a_failing_attempt_answers_2xx_and_schedules_its_own_retry(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    # A non-2xx would make Cloud Tasks back off the whole queue: Planter owns the retry instead.
    task = create(client, auth_header(), fail_step="creating_org", failures=2)
    first = deliver(client, task["task_id"], "creating_org")
    assert first.status_code == 200 and first.get_json()["outcome"] == "retry"
    row = step_rows(engine, task["task_id"])["creating_org"]
    assert row["attempts"] == 1 and row["status"] == "pending"
    assert "simulated failure" in row["error"]
    # One copy, scheduled for when the backoff ends, named after the attempt that failed.
    assert [(s[1], s[2], s[3], s[4]) for s in enqueued.scheduled] == [("creating_org", 0, row["due_at"], "retry-1")]
    assert first.get_json()["next_delivery_at"].startswith(row["due_at"].strftime("%Y-%m-%dT%H:%M:%S"))
    # Redelivered before the backoff ends: a no-op 2xx, not counted, nothing more scheduled.
    early = deliver(client, task["task_id"], "creating_org")
    assert early.status_code == 200 and early.get_json()["outcome"] == "noop"
    assert f"backing off until {row['due_at'].strftime('%Y-%m-%dT%H:%M:%S')}" in early.get_json()["detail"]
    assert step_rows(engine, task["task_id"])["creating_org"]["attempts"] == 1
    assert len(enqueued.scheduled) == 1
    make_due(engine, task["task_id"], "creating_org")
    second = deliver(client, task["task_id"], "creating_org")
    assert second.status_code == 200 and second.get_json()["outcome"] == "retry"
    # The backoff doubles: 2 s after the second failure.
    again = step_rows(engine, task["task_id"])["creating_org"]
    assert 1.5 < (again["due_at"] - again["heartbeat_at"]).total_seconds() <= 2.5
    assert enqueued.scheduled[-1][4] == "retry-2"
    make_due(engine, task["task_id"], "creating_org")
    third = deliver(client, task["task_id"], "creating_org")
    assert third.status_code == 200 and third.get_json()["outcome"] == "succeeded"
    after = read(client, auth_header(), task["task_id"])
    first_step = steps_of(after)["creating_org"]
    assert (first_step["attempts"], first_step["status"], first_step["error"]) == (3, "succeeded", None)
    assert enqueued.calls[-1] == (task["task_id"], "forking_template", 0)
    # The phase was shown once, however many attempts it took.
    assert [r[0] for r in progress_rows(engine, task["task_id"])] == ["initializing", "step:creating_org"]


def test_exhausted_attempts_fail_the_task_and_skip_the_rest(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    task = create(client, auth_header(), fail_step="forking_template", failures=50)
    deliver(client, task["task_id"], "creating_org")
    limit = pipeline.BY_NAME["forking_template"].max_attempts
    for attempt in range(1, limit + 1):
        make_due(engine, task["task_id"], "forking_template")
        response = deliver(client, task["task_id"], "forking_template")
        if attempt < limit:
            assert (response.status_code, response.get_json()["outcome"]) == (200, "retry"), attempt
        else:
            assert response.status_code == 200
            assert response.get_json()["outcome"] == "failed"
    after = read(client, auth_header(), task["task_id"])
    assert after["status"] == "failed"
    assert after["failed_at"] is not None and after["completed_at"] is None
    assert "forking_template" in after["error_message"] and "simulated failure" in after["error_message"]
    steps = steps_of(after)
    assert steps["creating_org"]["status"] == "succeeded"
    assert steps["forking_template"]["status"] == "failed"
    assert steps["forking_template"]["attempts"] == limit
    assert all(steps[s]["status"] == "skipped" and steps[s]["attempts"] == 0 for s in STEPS[2:])
    assert progress_rows(engine, task["task_id"])[-1][1] == "failed"
    # Nothing more happens: a further delivery is a no-op, nothing is handed over.
    calls = len(enqueued.calls)
    for step in STEPS:
        late = deliver(client, task["task_id"], step)
        assert late.status_code == 200 and late.get_json()["outcome"] == "noop"
    assert len(enqueued.calls) == calls
    assert read(client, auth_header(), task["task_id"])["status"] == "failed"
    assert usage(engine) == []  # the failed step metered nothing


# --- concurrency and metering ----------------------------------------------------------------
def _waiting_on_locks(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        count: int = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
    return count


@pytest.mark.parametrize("staged", [False, True], ids=["racing", "held-at-the-lock"])
def test_concurrent_duplicates_run_the_provider_once(
    client: Any,
    auth_header: Any,
    enqueued: RecordingEnqueuer,
    engine: sa.Engine,
    database_url: str,
    staged: bool,
) -> None:
    """Four copies of one step at once: one runs it, the others come back later or find it done.

    "held-at-the-lock" makes the race certain: all copies arrive while the task row is busy (as
    when a cancel or a progress callback holds it), so they all read the step at the same moment.
    """
    task = create(client, auth_header(), step_seconds=1.0)
    deliver(client, task["task_id"], "creating_org")
    deliver(client, task["task_id"], "forking_template")
    calls = len(enqueued.calls)
    copies = 4
    barrier = threading.Barrier(copies)
    responses: list[Any] = []
    lock = threading.Lock()

    def one() -> None:
        local = client.application.test_client()
        barrier.wait()
        response = deliver(local, task["task_id"], "customizing_project")
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=one) for _ in range(copies)]
    # Outside the service's pool, which the copies use up between them.
    side = sa.create_engine(database_url, poolclass=sa.NullPool)
    holder = side.connect()
    try:
        if staged:
            holder.execute(sa.text("SELECT 1 FROM tasks WHERE id = :t FOR UPDATE"), {"t": task["task_id"]})
        for t in threads:
            t.start()
        if staged:
            deadline = time.monotonic() + 10
            while _waiting_on_locks(side) < copies:
                assert time.monotonic() < deadline, "the copies never queued at the task's lock"
                time.sleep(0.05)
    finally:
        holder.rollback()
        holder.close()
        side.dispose()
    for t in threads:
        t.join(30)
    codes = sorted(r.status_code for r in responses)
    outcomes = [r.get_json().get("outcome") for r in responses if r.status_code == 200]
    assert len(responses) == copies
    assert outcomes.count("succeeded") == 1, (codes, outcomes)
    assert codes.count(503) + outcomes.count("noop") == copies - 1, (codes, outcomes)
    row = step_rows(engine, task["task_id"])["customizing_project"]
    assert row["attempts"] == 1 and row["status"] == "succeeded"
    assert len(enqueued.calls) == calls + 1
    assert usage(engine) == [("alice@example.test", pipeline.BY_NAME["customizing_project"].ai_operations, 1, 0)]
    assert [r[0] for r in progress_rows(engine, task["task_id"])].count("step:customizing_project") == 1


def test_usage_is_metered_once_per_pipeline_whatever_the_redelivery(
    client: Any, auth_header: Any, engine: sa.Engine
) -> None:
    first = create(client, auth_header("bob@example.test"), "First")
    second = create(client, auth_header("bob@example.test"), "Second", fail_step="customizing_project", failures=1)
    third = create(client, auth_header("carol@example.test"), "Third")
    for task in (first, second, third):
        for step in STEPS:
            while True:
                response = deliver(client, task["task_id"], step)
                deliver(client, task["task_id"], step)  # an immediate duplicate of every delivery
                if response.get_json()["outcome"] != "retry":
                    break
                make_due(engine, task["task_id"], step)
    for task in (first, second, third):
        assert read(client, auth_header(task_owner(engine, task["task_id"])), task["task_id"])["status"] == "completed"
    assert usage(engine) == [
        ("bob@example.test", 2 * AI_PER_PIPELINE, 2, 10),
        ("carol@example.test", AI_PER_PIPELINE, 1, 5),
    ]


def task_owner(engine: sa.Engine, task_id: str) -> str:
    email: str = task_row(engine, task_id)["user_email"]
    return email


# --- the reaper -------------------------------------------------------------------------------
def test_an_expired_lease_is_reenqueued_under_a_new_generation(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    task = create(client, auth_header())
    deliver(client, task["task_id"], "creating_org")
    # A delivery claimed forking_template and its process died: running, lease long gone.
    execute(
        engine,
        """UPDATE task_steps SET status = 'running', attempts = 1, claim_id = gen_random_uuid(), due_at = NULL,
               started_at = now() - interval '5 minutes', heartbeat_at = now() - interval '5 minutes',
               lease_expires_at = now() - interval '1 minute'
           WHERE task_id = :t AND name = 'forking_template'""",
        t=task["task_id"],
    )
    # A live lease elsewhere is left alone.
    other = create(client, auth_header(), "Other")
    execute(
        engine,
        """UPDATE task_steps SET status = 'running', attempts = 1, claim_id = gen_random_uuid(),
               lease_expires_at = now() + interval '1 minute' WHERE task_id = :t AND name = 'creating_org'""",
        t=other["task_id"],
    )
    calls = len(enqueued.calls)
    assert tick(client) == {"reenqueued": 1, "failed": 0}
    assert enqueued.calls[calls:] == [(task["task_id"], "forking_template", 1)]
    row = step_rows(engine, task["task_id"])["forking_template"]
    assert row["status"] == "pending" and row["generation"] == 1 and row["claim_id"] is None
    assert row["attempts"] == 1 and "stopped responding" in row["error"]
    # A second tick finds nothing more to do; the new generation's delivery runs the step.
    assert tick(client) == {"reenqueued": 0, "failed": 0}
    response = deliver(client, task["task_id"], "forking_template", 1)
    assert response.status_code == 200 and response.get_json()["outcome"] == "succeeded"
    assert step_rows(engine, task["task_id"])["forking_template"]["attempts"] == 2
    assert step_rows(engine, other["task_id"])["creating_org"]["status"] == "running"


def test_an_expired_lease_out_of_attempts_fails_the_task(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    task = create(client, auth_header())
    limit = pipeline.BY_NAME["creating_org"].max_attempts
    execute(
        engine,
        """UPDATE task_steps SET status = 'running', attempts = :n, claim_id = gen_random_uuid(), due_at = NULL,
               lease_expires_at = now() - interval '1 second' WHERE task_id = :t AND name = 'creating_org'""",
        t=task["task_id"],
        n=limit,
    )
    calls = len(enqueued.calls)
    assert tick(client) == {"reenqueued": 0, "failed": 1}
    assert len(enqueued.calls) == calls
    after = read(client, auth_header(), task["task_id"])
    assert after["status"] == "failed" and after["failed_at"] is not None
    assert "stopped responding" in after["error_message"]
    assert [s["status"] for s in after["steps"]] == ["failed"] + ["skipped"] * (len(STEPS) - 1)
    assert tick(client) == {"reenqueued": 0, "failed": 0}


def test_a_due_step_that_never_arrived_is_reenqueued_after_the_grace(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    task = create(client, auth_header())
    deliver(client, task["task_id"], "creating_org")
    # Handed over just now: within the grace period it is left to the queue.
    assert tick(client) == {"reenqueued": 0, "failed": 0}
    # The process died between the commit and the enqueue: due long ago, never delivered.
    execute(
        engine,
        "UPDATE task_steps SET due_at = now() - interval '10 minutes' WHERE task_id = :t AND name = 'forking_template'",
        t=task["task_id"],
    )
    calls = len(enqueued.calls)
    assert tick(client) == {"reenqueued": 1, "failed": 0}
    assert enqueued.calls[calls:] == [(task["task_id"], "forking_template", 1)]
    row = step_rows(engine, task["task_id"])["forking_template"]
    assert row["status"] == "pending" and row["generation"] == 1 and row["attempts"] == 0
    assert tick(client) == {"reenqueued": 0, "failed": 0}
    # Both the late original and the re-enqueued copy may arrive: the step runs once.
    assert deliver(client, task["task_id"], "forking_template", 1).get_json()["outcome"] == "succeeded"
    assert deliver(client, task["task_id"], "forking_template", 0).get_json()["outcome"] == "noop"
    assert step_rows(engine, task["task_id"])["forking_template"]["attempts"] == 1
    assert usage(engine) == [("alice@example.test", 0, 1, 0)]


def test_a_step_waiting_in_a_busy_queue_is_sent_again_with_doubling_spacing(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine, settings: Settings
) -> None:
    grace = settings.redelivery_grace_seconds
    task = create(client, auth_header())
    deliver(client, task["task_id"], "creating_org")

    def due_for(seconds: float) -> None:
        execute(
            engine,
            "UPDATE task_steps SET due_at = now() - make_interval(secs => :s)"
            " WHERE task_id = :t AND name = 'forking_template'",
            t=task["task_id"],
            s=seconds,
        )

    sent = []
    for generation in range(1, 5):
        # Waiting for less than grace x 2^(copies sent so far): still presumed queued, not lost.
        due_for(grace * 2 ** (generation - 1) - 5)
        assert tick(client) == {"reenqueued": 0, "failed": 0}, generation
        due_for(grace * 2 ** (generation - 1) + 5)
        assert tick(client) == {"reenqueued": 1, "failed": 0}, generation
        sent.append(enqueued.calls[-1])
    assert sent == [(task["task_id"], "forking_template", g) for g in range(1, 5)]


def test_the_reaper_ignores_terminal_tasks(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    task = create(client, auth_header())
    assert client.post(f"/api/v1/tasks/{task['task_id']}/cancel", headers=auth_header()).status_code == 200
    execute(
        engine,
        """UPDATE task_steps SET status = 'running', claim_id = gen_random_uuid(),
               lease_expires_at = now() - interval '1 minute' WHERE task_id = :t AND name = 'creating_org'""",
        t=task["task_id"],
    )
    calls = len(enqueued.calls)
    assert tick(client) == {"reenqueued": 0, "failed": 0}
    assert len(enqueued.calls) == calls


@pytest.mark.parametrize("step", ["creating_org", "deploying"])
def test_a_lease_expired_delivery_without_attempts_left_fails_instead_of_running(
    client: Any, auth_header: Any, engine: sa.Engine, step: str
) -> None:
    """A redelivery that finds the last attempt's run dead must not start an extra attempt."""
    task = create(client, auth_header())
    for earlier in STEPS[: STEPS.index(step)]:
        deliver(client, task["task_id"], earlier)
    limit = pipeline.BY_NAME[step].max_attempts
    execute(
        engine,
        """UPDATE task_steps SET status = 'running', attempts = :n, claim_id = gen_random_uuid(), due_at = NULL,
               lease_expires_at = now() - interval '1 second' WHERE task_id = :t AND name = :s""",
        t=task["task_id"],
        s=step,
        n=limit,
    )
    response = deliver(client, task["task_id"], step)
    assert response.status_code == 200 and response.get_json()["outcome"] == "failed"
    row = step_rows(engine, task["task_id"])[step]
    assert row["attempts"] == limit and row["status"] == "failed"
    assert read(client, auth_header(), task["task_id"])["status"] == "failed"


def test_a_heartbeat_does_not_revive_an_expired_lease(
    client: Any, auth_header: Any, engine: sa.Engine, runtime: Runtime
) -> None:
    from common.queries import steps as q

    run_in_transaction = runtime.db.transaction
    task = create(client, auth_header())
    claim_id = uuid.uuid4()
    execute(
        engine,
        """UPDATE task_steps SET status = 'running', attempts = 1, claim_id = :c,
               lease_expires_at = now() + interval '1 minute' WHERE task_id = :t AND name = 'creating_org'""",
        t=task["task_id"],
        c=claim_id,
    )
    task_id = uuid.UUID(task["task_id"])
    assert run_in_transaction(lambda conn: q.heartbeat(conn, task_id, "creating_org", claim_id, 30)) == "ok"
    assert run_in_transaction(lambda conn: q.heartbeat(conn, task_id, "creating_org", uuid.uuid4(), 30)) == "lost"
    execute(
        engine,
        "UPDATE task_steps SET lease_expires_at = now() - interval '1 second' WHERE task_id = :t",
        t=task["task_id"],
    )
    assert run_in_transaction(lambda conn: q.heartbeat(conn, task_id, "creating_org", claim_id, 30)) == "lost"
    assert tick(client) == {"reenqueued": 1, "failed": 0}
    # A run of a task that was cancelled learns it at its next beat, and its lease is not extended.
    execute(
        engine,
        """UPDATE task_steps SET status = 'running', claim_id = :c, lease_expires_at = now() + interval '1 minute'
           WHERE task_id = :t AND name = 'creating_org'""",
        t=task["task_id"],
        c=claim_id,
    )
    assert client.post(f"/api/v1/tasks/{task['task_id']}/cancel", headers=auth_header()).status_code == 200
    assert run_in_transaction(lambda conn: q.heartbeat(conn, task_id, "creating_org", claim_id, 30)) == "ended"
