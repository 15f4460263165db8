"""Waiting steps against a real PostgreSQL, through the gateway: a long step is handed off, ends
by a worker's outcome callback, by a scheduled check, or by its timeout; "not yet" is a 2xx.

The simulated provider hands off any step longer than its inline bound; the passing of time is
staged in the database (the check made due, the outside work's end moved into the past).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from common.providers.simulated import INLINE_SECONDS
from tests.conftest import RecordingEnqueuer, callback_token
from tests.integration.test_steps import create, deliver, execute, progress_rows, read, step_rows, tick

LONG = INLINE_SECONDS + 30  # handed off, and far from finishing unless the test says so


def hand_off(client: Any, headers: dict[str, str], engine: sa.Engine) -> str:
    """A task whose first step is waiting for its outside work."""
    task = create(client, headers, "Waiting App", step_seconds=LONG)
    response = deliver(client, task["task_id"], "creating_org")
    assert response.status_code == 200 and response.get_json()["outcome"] == "waiting", response.get_json()
    assert step_rows(engine, task["task_id"])["creating_org"]["status"] == "waiting"
    task_id: str = task["task_id"]
    return task_id


def finish_outside_work(engine: sa.Engine, task_id: str, step: str = "creating_org") -> None:
    """What the passing of time does: the check is due and the outside work has ended."""
    execute(
        engine,
        """UPDATE task_steps SET due_at = now(), handoff = jsonb_set(handoff, '{state,finishes_at}', '0')
           WHERE task_id = :t AND name = :s""",
        t=task_id,
        s=step,
    )


def outcome(client: Any, task_id: str, **body: Any) -> Any:
    body = {"message": "the worker reports", "step": "creating_org", **body}
    headers = {"Authorization": f"Bearer {callback_token(task_id)}"}
    return client.post(f"/api/v1/tasks/{task_id}/progress", json=body, headers=headers)


def test_a_long_step_is_handed_off_and_its_scheduled_check_finishes_it(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    task_id = hand_off(client, auth_header(), engine)
    row = step_rows(engine, task_id)["creating_org"]
    assert row["attempts"] == 1 and row["claim_id"] is not None
    # One check scheduled, for when the outside work should be done, named after that time.
    assert [(s[1], s[3], s[4].startswith("check-")) for s in enqueued.scheduled] == [
        ("creating_org", row["due_at"], True)
    ]
    assert 25 < (row["due_at"] - row["heartbeat_at"]).total_seconds() <= LONG
    # A copy arriving before the check is due: a no-op 2xx that schedules nothing more.
    early = deliver(client, task_id, "creating_org")
    assert early.status_code == 200 and early.get_json()["outcome"] == "noop"
    assert "next check" in early.get_json()["detail"]
    assert len(enqueued.scheduled) == 1
    # The check is due but the work goes on: checked again later, under a new name.
    execute(engine, "UPDATE task_steps SET due_at = now() WHERE task_id = :t AND name = 'creating_org'", t=task_id)
    again = deliver(client, task_id, "creating_org")
    assert again.get_json()["outcome"] == "waiting"
    assert len(enqueued.scheduled) == 2 and enqueued.scheduled[1][4] != enqueued.scheduled[0][4]
    finish_outside_work(engine, task_id)
    done = deliver(client, task_id, "creating_org")
    assert done.get_json()["outcome"] == "succeeded"
    assert enqueued.calls[-1] == (task_id, "forking_template", 0)
    after = read(client, auth_header(), task_id)
    assert after["org_url"] and after["steps"][0]["attempts"] == 1
    assert [r[0] for r in progress_rows(engine, task_id)] == ["initializing", "step:creating_org"]


def test_a_worker_outcome_ends_the_waiting_step_once(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    task_id = hand_off(client, auth_header(), engine)
    org = "https://github.com/planter-from-the-worker"
    response = outcome(client, task_id, step_outcome="succeeded", org_url=org)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["org_url"] == org
    assert steps_status(engine, task_id)["creating_org"] == "succeeded"
    calls = list(enqueued.calls)
    assert calls[-1] == (task_id, "forking_template", 0)
    # The same outcome again: 200, nothing changes, nothing more handed over.
    repeated = outcome(client, task_id, step_outcome="succeeded", org_url=org)
    assert repeated.status_code == 200 and enqueued.calls == calls
    # An outcome for a step that is not waiting: 409.
    conflict = outcome(client, task_id, step="forking_template", step_outcome="succeeded")
    assert conflict.status_code == 409 and conflict.mimetype == "application/problem+json"
    assert outcome(client, task_id, step_outcome="failed", error="late").status_code == 409
    # The scheduled check arriving afterwards finds the step finished.
    assert deliver(client, task_id, "creating_org").get_json()["outcome"] == "noop"
    assert enqueued.calls == calls


def test_a_worker_outcome_keeps_the_facts_the_provider_noted_at_hand_off(
    client: Any, auth_header: Any, engine: sa.Engine
) -> None:
    # A release build notes its release id when it hands off; the worker's outcome does not know it.
    task_id = hand_off(client, auth_header(), engine)
    execute(
        engine,
        """UPDATE task_steps SET handoff = jsonb_set(handoff, '{state,facts}', '{"release_id": "b-42"}')
           WHERE task_id = :t AND name = 'creating_org'""",
        t=task_id,
    )
    org = "https://github.com/planter-from-the-worker"
    assert outcome(client, task_id, step_outcome="succeeded", org_url=org).status_code == 200
    facts = read(client, auth_header(), task_id)["steps"][0]["result"]["facts"]
    assert facts == {"release_id": "b-42", "org_url": org}


def test_a_failed_outcome_is_one_failed_attempt_retried_by_a_scheduled_copy(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    task_id = hand_off(client, auth_header(), engine)
    response = outcome(client, task_id, step_outcome="failed", error="the build broke")
    assert response.status_code == 200
    row = step_rows(engine, task_id)["creating_org"]
    assert (row["status"], row["attempts"], row["error"]) == ("pending", 1, "the build broke")
    assert enqueued.scheduled[-1][3:] == (row["due_at"], "retry-1")
    assert outcome(client, task_id, step_outcome="failed", error="the build broke").status_code == 200
    assert step_rows(engine, task_id)["creating_org"]["attempts"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {"step": "creating_org"},
        {"step_outcome": "succeeded"},
        {"step": "creating_org", "step_outcome": "succeeded", "error": "x"},
    ],
)
def test_an_outcome_must_name_its_step_and_be_well_formed(
    client: Any, auth_header: Any, engine: sa.Engine, body: dict[str, Any]
) -> None:
    task = create(client, auth_header())
    headers = {"Authorization": f"Bearer {callback_token(task['task_id'])}"}
    response = client.post(f"/api/v1/tasks/{task['task_id']}/progress", json={"message": "m", **body}, headers=headers)
    assert response.status_code == 422 and response.mimetype == "application/problem+json"


def test_an_outcome_and_a_check_arriving_together_have_one_effect(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    for _ in range(5):
        task_id = hand_off(client, auth_header(), engine)
        finish_outside_work(engine, task_id)
        answers = race(
            lambda own, t=task_id: outcome(own, t, step_outcome="succeeded"),
            lambda own, t=task_id: deliver(own, t, "creating_org"),
            app=client.application,
        )
        assert [a.status_code for a in answers] == [200, 200]
        assert [c for c in enqueued.calls if c[0] == task_id][1:] == [(task_id, "forking_template", 0)]
        assert steps_status(engine, task_id)["creating_org"] == "succeeded"


def race(*senders: Any, app: Any) -> list[Any]:
    """Run the senders at once, each with its own client; their answers in order."""
    answers: list[Any] = [None] * len(senders)

    def send(i: int) -> None:
        answers[i] = senders[i](app.test_client())

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(senders))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return answers


def test_a_cancelled_task_s_waiting_step_stops_at_once_and_its_check_is_a_no_op(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    task_id = hand_off(client, auth_header(), engine)
    assert client.post(f"/api/v1/tasks/{task_id}/cancel", headers=auth_header()).status_code == 200
    # Stopped by the cancel itself: its check may be lost, and the reaper leaves ended tasks alone.
    assert steps_status(engine, task_id)["creating_org"] == "skipped"
    scheduled = len(enqueued.scheduled)
    execute(engine, "UPDATE task_steps SET due_at = now() WHERE task_id = :t AND name = 'creating_org'", t=task_id)
    check = deliver(client, task_id, "creating_org")
    assert check.status_code == 200 and check.get_json()["outcome"] == "noop"
    assert steps_status(engine, task_id)["creating_org"] == "skipped"
    assert len(enqueued.scheduled) == scheduled and enqueued.calls == [(task_id, "creating_org", 0)]
    assert tick(client) == {"reenqueued": 0, "failed": 0}


def test_the_reaper_resends_a_lost_check_and_retries_outside_work_that_timed_out(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    lost_check = hand_off(client, auth_header(), engine)
    timed_out = hand_off(client, auth_header(), engine)
    execute(
        engine,
        "UPDATE task_steps SET due_at = now() - interval '10 minutes' WHERE task_id = :t AND name = 'creating_org'",
        t=lost_check,
    )
    execute(
        engine,
        "UPDATE task_steps SET lease_expires_at = now() - interval '1 second'"
        " WHERE task_id = :t AND name = 'creating_org'",
        t=timed_out,
    )
    calls = len(enqueued.calls)
    assert tick(client) == {"reenqueued": 2, "failed": 0}
    assert sorted(enqueued.calls[calls:]) == sorted([(lost_check, "creating_org", 1), (timed_out, "creating_org", 1)])
    # The lost check's step keeps waiting (the new delivery is its check); the timed-out one is retried.
    assert step_rows(engine, lost_check)["creating_org"]["status"] == "waiting"
    retried = step_rows(engine, timed_out)["creating_org"]
    assert retried["status"] == "pending" and "stopped responding" in retried["error"]
    finish_outside_work(engine, lost_check)
    assert deliver(client, lost_check, "creating_org", 1).get_json()["outcome"] == "succeeded"
    # The retried step is a new attempt (handed off again).
    assert deliver(client, timed_out, "creating_org", 1).get_json()["outcome"] == "waiting"
    assert step_rows(engine, timed_out)["creating_org"]["attempts"] == 2


def steps_status(engine: sa.Engine, task_id: str) -> dict[str, str]:
    return {name: row["status"] for name, row in step_rows(engine, task_id).items()}
