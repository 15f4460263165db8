"""GET /api/v1/dashboard/steps against figures computed by hand."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.contract import assert_problem
from tests.integration.assistant_seed import StepRun, add_task, add_user, failed, ok

STEPS = "/api/v1/dashboard/steps"
ALICE, BOB = "alice@example.test", "bob@example.test"
Headers = Callable[..., dict[str, str]]


@pytest.fixture
def seeded(engine: sa.Engine) -> None:
    now = datetime.now(UTC)
    alice, bob = add_user(engine, ALICE), add_user(engine, BOB)

    def ago(days: float) -> datetime:
        return now - timedelta(days=days)

    add_task(
        engine,
        alice,
        name="t1",
        status="completed",
        created=ago(1),
        steps=[ok("creating_org", 10), ok("deploying", 100)],
    )
    add_task(
        engine,
        alice,
        name="t2",
        status="completed",
        created=ago(2),
        steps=[ok("creating_org", 20, attempts=2), ok("deploying", 200)],
    )
    add_task(
        engine,
        alice,
        name="t3",
        status="failed",
        created=ago(3),
        steps=[ok("creating_org", 30), failed("deploying", 300, "boom", attempts=3)],
    )
    add_task(engine, alice, name="t4-old", status="completed", created=ago(40), steps=[ok("creating_org", 1000)])
    add_task(
        engine,
        alice,
        name="t5-other-type",
        status="completed",
        created=ago(1),
        task_type="redeploy",
        steps=[ok("deploying", 50)],
    )
    add_task(
        engine,
        alice,
        name="t6-running",
        status="deploying",
        created=ago(0.01),
        steps=[ok("creating_org", 40), StepRun("deploying", "running")],
    )
    add_task(engine, bob, name="bob", status="failed", created=ago(1), steps=[failed("creating_org", 999, "x")])


def test_per_step_figures_match_the_hand_computed_ones(client: Any, auth_header: Headers, seeded: None) -> None:
    response = client.get(f"{STEPS}?days=30", headers=auth_header(ALICE))
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "steps": [
            # 10, 20, 30, 40 s; t2 took two attempts; the running t6's deploy has not ended.
            {
                "name": "creating_org",
                "runs": 4,
                "succeeded": 4,
                "failed": 0,
                "retries": 1,
                "failure_rate": 0.0,
                "p50_seconds": 25.0,
                "p95_seconds": 38.5,
                "share_of_time": round(100 / 700, 4),
            },
            # 100, 200 s and a failure after 300 s and 3 attempts.
            {
                "name": "deploying",
                "runs": 3,
                "succeeded": 2,
                "failed": 1,
                "retries": 2,
                "failure_rate": 0.3333,
                "p50_seconds": 200.0,
                "p95_seconds": 290.0,
                "share_of_time": round(600 / 700, 4),
            },
        ]
    }


def test_the_window_and_the_type_filter(client: Any, auth_header: Headers, seeded: None) -> None:
    wide = client.get(f"{STEPS}?days=90", headers=auth_header(ALICE)).get_json()["steps"]
    assert [(s["name"], s["runs"]) for s in wide] == [("creating_org", 5), ("deploying", 3)]
    other = client.get(f"{STEPS}?type=redeploy", headers=auth_header(ALICE)).get_json()["steps"]
    assert other == [
        {
            "name": "deploying",
            "runs": 1,
            "succeeded": 1,
            "failed": 0,
            "retries": 0,
            "failure_rate": 0.0,
            "p50_seconds": 50.0,
            "p95_seconds": 50.0,
            "share_of_time": 1.0,
        }
    ]
    assert client.get(f"{STEPS}?type=teardown", headers=auth_header(ALICE)).get_json() == {"steps": []}
    bob = client.get(STEPS, headers=auth_header(BOB)).get_json()["steps"]
    assert [(s["name"], s["runs"], s["failed"]) for s in bob] == [("creating_org", 1, 1)]


def test_invalid_parameters_are_422(client: Any, auth_header: Headers) -> None:
    for query in ("days=0", "days=91", "days=x", "type=", "type=no_such_type", "other=1"):
        assert_problem(client.get(f"{STEPS}?{query}", headers=auth_header(ALICE)), 422)
    # An unknown task type says which ones there are, rather than answering an empty list.
    unknown = assert_problem(client.get(f"{STEPS}?type=deploy", headers=auth_header(ALICE)), 422)
    assert "create_project" in unknown["errors"]["type"]
