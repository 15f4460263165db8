"""Issue 12, "visible when it stalls": one log line per delivery's outcome (claimed; no-op and why;
scheduled again and when; succeeded and what it handed over; failed) and the reaper naming what it
re-sends, why, and how long it waited. Through the gateway, with the logs captured."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.test_steps import create, deliver, execute, make_due, tick


def lines(caplog: pytest.LogCaptureFixture, task_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The steps' and the reaper's log lines about one task, in order, with their fields."""
    records = [(r.getMessage(), getattr(r, "fields", {})) for r in caplog.records]
    return [(message, fields) for message, fields in records if fields.get("task_id") == task_id]


def test_each_delivery_says_what_it_did_and_the_reaper_what_it_resends(
    client: Any, auth_header: Any, engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="planter")
    task_id = create(client, auth_header(), fail_step="creating_org", failures=1)["task_id"]

    deliver(client, task_id, "creating_org")  # fails once: scheduled again
    deliver(client, task_id, "creating_org")  # too early: a no-op that says why
    make_due(engine, task_id, "creating_org")
    deliver(client, task_id, "creating_org")  # succeeds and hands over the next step
    said = lines(caplog, task_id)
    outcomes = [fields for message, fields in said if message == "step outcome"]
    assert [o["outcome"] for o in outcomes] == ["retry", "noop", "succeeded"]
    assert [o["step"] for o in outcomes] == ["creating_org"] * 3
    assert "simulated failure" in outcomes[0]["detail"] and outcomes[0]["next_delivery_at"].endswith("Z")
    assert outcomes[1]["detail"].startswith("the step is backing off until "), outcomes[1]
    assert outcomes[2]["handed_over"] == "forking_template"
    assert [m for m, _ in said].count("step claimed") == 2  # the two deliveries that ran it

    # The next step's delivery is lost: the reaper names it, why, and how long it was waited for.
    execute(
        engine,
        "UPDATE task_steps SET due_at = now() - interval '10 minutes' WHERE task_id = :t AND name = 'forking_template'",
        t=task_id,
    )
    assert tick(client)["reenqueued"] == 1
    (resent,) = [fields for message, fields in lines(caplog, task_id) if message == "reaper re-sends step"]
    assert resent["step"] == "forking_template" and resent["why"] == "its delivery never arrived"
    assert resent["waited_seconds"] >= 600 and resent["generation"] == 1


def test_a_step_out_of_attempts_logs_its_failure(
    client: Any, auth_header: Any, engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="planter")
    task_id = create(client, auth_header(), fail_step="creating_org", failures=100)["task_id"]
    for _ in range(10):
        if deliver(client, task_id, "creating_org").get_json()["outcome"] == "failed":
            break
        make_due(engine, task_id, "creating_org")
    said = lines(caplog, task_id)
    last = [fields for message, fields in said if message == "step outcome"][-1]
    assert last["outcome"] == "failed" and "simulated failure" in last["detail"]
    assert ("task failed", "creating_org") in [(m, f.get("step")) for m, f in said]
