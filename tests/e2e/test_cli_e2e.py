"""The `planter` console script (.venv/bin/planter, installed by make install) against the local
stack: create --watch to the end (0 completed, 1 failed), resuming its stream when the server ends
it (streams of 2 s here), set-tier through the admin route, and the account routes."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests
import sqlalchemy as sa

from dev.stack import LocalStack, free_port
from tests.conftest import TEST_JWT_SECRET, TEST_STEP_SECRET
from tests.e2e.conftest import E2E_ENV, Api, running_stack

PLANTER = pathlib.Path(sys.executable).parent / "planter"
CLI_ENV = {**E2E_ENV, "EVENTS_POLL_SECONDS": "0.1", "EVENTS_HEARTBEAT_SECONDS": "1", "EVENTS_STREAM_SECONDS": "2"}


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with running_stack(CLI_ENV, "pc") as local:
        yield local


def planter(
    stack: LocalStack, *args: str, email: str = "cli@example.test", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PLANTER_URL": stack.base_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "STEP_SIGNING_SECRET": TEST_STEP_SECRET,
    }
    token = subprocess.run(
        [str(PLANTER), "token", email], env=env, capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    env["PLANTER_TOKEN"] = token
    return subprocess.run([str(PLANTER), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_the_console_script_is_installed_in_the_virtualenv() -> None:
    assert PLANTER.exists(), "make install installs the project (pip install -e .) for .venv/bin/planter"


def test_create_watch_follows_a_task_to_completion_and_exits_0(stack: LocalStack, api: Api) -> None:
    # Steps of 0.5 s: the pipeline outlives several 2-second streams, so the CLI must resume.
    done = planter(stack, "create", "CLI Demo", "--watch", "--simulate", '{"step_seconds": 0.5}')
    assert done.returncode == 0, done.stdout + done.stderr
    assert "100%" in done.stdout and "completed" in done.stdout
    for step in ("creating_org", "forking_template", "customizing_project", "deploying", "creating_issues"):
        assert step in done.stdout
    task_id = done.stdout.split("created task ", 1)[1].split(";", 1)[0]
    stored = api.progress(task_id)
    # One line per progress event, each shown once although the stream was resumed.
    lines = [line for line in done.stdout.splitlines() if line.startswith("[") and "%" in line]
    assert len(lines) == len(stored), done.stdout


def test_create_watch_exits_1_for_a_failing_task_with_its_error(stack: LocalStack) -> None:
    failing = '{"step_seconds": 0.1, "fail_step": "deploying", "failures": 9}'
    done = planter(stack, "create", "CLI Fails", "--watch", "--simulate", failing, email="cli-fail@example.test")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "failed:" in done.stdout and "deploying" in done.stdout


def test_watch_json_prints_events_as_json_lines(stack: LocalStack, api: Api) -> None:
    task = api.create("cli-json@example.test", "CLI Json", step_seconds=0.1)
    done = planter(stack, "watch", task["task_id"], "--json", email="cli-json@example.test")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    progress = [e for e in events if e["event"] == "progress"]
    assert [int(e["id"]) for e in progress] == list(range(1, len(progress) + 1))
    assert events[-1]["event"] == "end" and events[-1]["data"]["status"] == "completed"


def test_errors_are_the_problem_detail_with_exit_codes(stack: LocalStack) -> None:
    missing = planter(stack, "watch", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 3 and "404" in missing.stderr and "no task" in missing.stderr
    invalid = planter(stack, "create", "")
    assert invalid.returncode == 3 and "422" in invalid.stderr and "project_name" in invalid.stderr
    # Every command reports a refusal the same way (chat once crashed here on a missing --json).
    unknown = planter(stack, "chat", "hello", "--conversation", "00000000-0000-0000-0000-000000000000")
    assert unknown.returncode == 3 and "404" in unknown.stderr and "Traceback" not in unknown.stderr
    down = subprocess.run(
        [str(PLANTER), "--url", f"http://127.0.0.1:{free_port()}", "ls"], capture_output=True, text=True, check=False
    )
    assert down.returncode == 4 and "cannot reach" in down.stderr


def test_set_tier_lifts_the_limit_at_once(stack: LocalStack, api: Api) -> None:
    email = "cli-tier@example.test"
    api.create(email, "Before")  # the user exists; now put them at the free limit
    with api.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO usage (user_id, period_start, ai_operations_count)"
                " SELECT id, date_trunc('month', now() AT TIME ZONE 'UTC')::date, 100 FROM users WHERE email = :e"
                " ON CONFLICT (user_id, period_start) DO UPDATE SET ai_operations_count = 100"
            ),
            {"e": email},
        )
    body = {"project_name": "Past The Limit"}
    refused = requests.post(f"{stack.base_url}/api/v1/projects", json=body, headers=api.headers(email), timeout=10)
    assert refused.status_code == 429
    tier = planter(stack, "admin", "set-tier", email, "pro")
    assert tier.returncode == 0 and "pro" in tier.stdout, tier.stderr
    accepted = requests.post(f"{stack.base_url}/api/v1/projects", json=body, headers=api.headers(email), timeout=10)
    assert accepted.status_code == 202, accepted.text
    me = planter(stack, "me", "--json", email=email)
    profile = json.loads(me.stdout)
    assert profile["subscription"]["tier"] == "pro" and profile["subscription"]["monthly_operations_limit"] == 1000
    assert profile["usage"]["ai_operations"] >= 100
    listed = planter(stack, "admin", "users", "--email", "cli-tier", "--json")
    assert [u["tier"] for u in json.loads(listed.stdout)["users"]] == ["pro"]


def test_admin_routes_refuse_unsigned_requests(stack: LocalStack) -> None:
    post = requests.post(
        f"{stack.base_url}/internal/admin/subscriptions", json={"email": "x@example.test", "tier": "pro"}, timeout=10
    )
    assert post.status_code == 401
    listing = requests.get(f"{stack.base_url}/internal/admin/users", timeout=10)
    assert listing.status_code == 401
