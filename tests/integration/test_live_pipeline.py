"""The live provider, through the steps service and a real PostgreSQL, against the local GitHub
and Gemini stand-ins: real git repositories, real HTTP, faults injected the way API.md says."""

from __future__ import annotations

import html
import pathlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from common.providers import StepContext
from common.runtime import Runtime
from common.services import steps
from dev.standins.github.server import Running, start
from dev.standins.github.templates import PLANTER_ORG
from tests.live_support import (
    INSTALL_URL,
    TEMPLATE,
    clone,
    create,
    live_provider,
    make_due,
    rest,
    run_pipeline,
    step_row,
)


@pytest.fixture(scope="module")
def github_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start(tmp_path_factory.mktemp("github"))
    yield running
    running.stop()


@pytest.fixture
def github(github_server: Running) -> Running:
    github_server.app.faults.clear()
    return github_server


@pytest.fixture
def provider(github: Running, gemini: Any) -> Any:
    return live_provider(github.base_url, gemini.base_url)


def _head(github: Running, full: str) -> str:
    with rest(github.base_url) as http:
        sha: str = http.get(f"/repos/{full}/git/ref/heads/main").json()["object"]["sha"]
    return sha


def _issues(github: Running, full: str) -> list[dict[str, Any]]:
    with rest(github.base_url) as http:
        found: list[dict[str, Any]] = http.get(f"/repos/{full}/issues", params={"state": "all", "per_page": 100}).json()
    return found


def test_a_pipeline_plants_a_repository_that_git_clone_fetches(
    client: Any, auth_header: Any, provider: Any, github: Running, tmp_path: pathlib.Path, runtime: Runtime
) -> None:
    task = create(client, auth_header(), "Recipe Box")
    results = run_pipeline(runtime, task["task_id"], provider)
    assert [r.outcome for r in results] == ["succeeded"] * 6

    done = client.get(f"/api/v1/tasks/{task['task_id']}", headers=auth_header()).get_json()
    assert done["status"] == "completed"
    assert done["repo_url"] == f"{github.base_url}/{PLANTER_ORG}/recipe-box"
    by_name = {s["name"]: s for s in done["steps"]}
    assert by_name["forking_template"]["result"]["full_name"] == f"{PLANTER_ORG}/recipe-box"
    assert by_name["creating_gcp_project"]["status"] == "skipped"
    assert "not configured" in by_name["deploying"]["result"]["skipped"]

    log = clone(done["repo_url"], tmp_path / "clone")
    assert log == ["Customize the template for recipe-box", "Initial commit"]
    files = {
        p.relative_to(tmp_path / "clone").as_posix() for p in (tmp_path / "clone").rglob("*") if ".git" not in p.parts
    }
    assert {"Dockerfile", "app/main.py", "tests/test_main.py", "config/settings.json"} <= files
    readme = (tmp_path / "clone" / "README.md").read_text()
    assert readme.startswith("# Recipe Box") and "plan weekly meals" in readme
    assert '"log_level": "info"' in (tmp_path / "clone" / "config" / "settings.json").read_text()
    assert 'name = "recipe-box"' in (tmp_path / "clone" / "pyproject.toml").read_text()
    commit = by_name["customizing_project"]["result"]["commit_sha"]
    assert _head(github, f"{PLANTER_ORG}/recipe-box") == commit

    issues = by_name["creating_issues"]["result"]["issues"]
    assert 3 <= len(issues) <= 7
    opened = _issues(github, f"{PLANTER_ORG}/recipe-box")
    assert sorted(i["number"] for i in opened) == sorted(i["number"] for i in issues)
    assert all("planter" in [label["name"] for label in i["labels"]] for i in opened)
    assert all(f"planter:task={task['task_id']}" in i["body"] for i in opened)
    # Each issue is one of the description's features or a chore of the project, not the prompt.
    titles = [i["title"] for i in opened]
    assert any("family recipes" in t for t in titles) and any("weekly meals" in t for t in titles), titles
    assert not any(t.startswith(("Plan ", "What ", "#")) for t in titles), titles

    # The URLs the task hands out open as web pages, as on github.com.
    repo_page = httpx.get(done["repo_url"], timeout=10)
    assert repo_page.status_code == 200 and repo_page.headers["content-type"].startswith("text/html")
    assert "plan weekly meals" in repo_page.text and all(html.escape(t) in repo_page.text for t in titles)
    issue_page = httpx.get(issues[0]["url"], timeout=10)
    assert issue_page.status_code == 200 and html.escape(issues[0]["title"]) in issue_page.text
    commit_page = httpx.get(by_name["customizing_project"]["result"]["commit_url"], timeout=10)
    assert commit_page.status_code == 200 and "README.md" in commit_page.text
    assert httpx.get(f"{done['repo_url']}/issues/99", timeout=10).status_code == 404


def test_a_redelivery_of_every_step_after_success_changes_nothing(
    client: Any, auth_header: Any, provider: Any, github: Running, engine: sa.Engine, runtime: Runtime
) -> None:
    task = create(client, auth_header(), "Garden Planner")
    run_pipeline(runtime, task["task_id"], provider)
    full = f"{PLANTER_ORG}/garden-planner"
    head, issues = _head(github, full), _issues(github, full)

    # Deliveries after success: the steps service does nothing...
    assert {r.outcome for r in run_pipeline(runtime, task["task_id"], provider)} == {"noop"}
    # ...and the provider itself, run again for every step (a run whose record was lost), adopts.
    done = client.get(f"/api/v1/tasks/{task['task_id']}", headers=auth_header()).get_json()
    facts = {"org_url": done["org_url"], "repo_url": done["repo_url"], "project_id": full}
    for name in ("creating_org", "forking_template", "customizing_project", "creating_issues"):
        ctx = StepContext(
            task_id=task["task_id"],
            step=name,
            attempt=2,
            project_name="Garden Planner",
            project_description="",
            mode="saas",
            payload={"template": TEMPLATE},
            facts=facts,
            callback_token=lambda: "",
        )
        outcome = provider.run(ctx)
        assert outcome.usage.get("ai_operations", 0) == 0, name  # nothing asked of the AI again
        if name == "forking_template":
            assert outcome.result["adopted"] is True
    assert _head(github, full) == head
    assert _issues(github, full) == issues


def test_a_name_clash_gets_a_suffix_in_planters_org(
    client: Any, auth_header: Any, provider: Any, github: Running, runtime: Runtime
) -> None:
    with rest(github.base_url) as http:
        made = http.post(f"/repos/{TEMPLATE}/generate", json={"owner": PLANTER_ORG, "name": "weather-station"})
        assert made.status_code == 201
    other_head = _head(github, f"{PLANTER_ORG}/weather-station")

    task = create(client, auth_header(), "Weather Station")
    assert [r.outcome for r in run_pipeline(runtime, task["task_id"], provider)] == ["succeeded"] * 6
    done = client.get(f"/api/v1/tasks/{task['task_id']}", headers=auth_header()).get_json()
    assert done["repo_url"].endswith(f"/{PLANTER_ORG}/weather-station-{task['task_id'][:6]}")
    assert _head(github, f"{PLANTER_ORG}/weather-station") == other_head
    assert _issues(github, f"{PLANTER_ORG}/weather-station") == []


def test_a_name_clash_in_the_users_org_fails_at_once_and_leaves_the_other_repository(
    client: Any, auth_header: Any, provider: Any, github: Running, engine: sa.Engine, runtime: Runtime
) -> None:
    github.app.state.add_org("acme-labs")
    with rest(github.base_url) as http:
        assert (
            http.post(f"/repos/{TEMPLATE}/generate", json={"owner": "acme-labs", "name": "inventory"}).status_code
            == 201
        )
    other_head = _head(github, "acme-labs/inventory")

    task = create(client, auth_header(), "Inventory", mode="user", github_owner="acme-labs")
    results = run_pipeline(runtime, task["task_id"], provider, ("creating_org", "forking_template"))
    assert [r.outcome for r in results] == ["succeeded", "failed"]
    row = step_row(engine, task["task_id"], "forking_template")
    assert row["status"] == "failed" and row["attempts"] == 1  # no retries spent on a refusal
    done = client.get(f"/api/v1/tasks/{task['task_id']}", headers=auth_header()).get_json()
    assert done["status"] == "failed"
    assert "acme-labs/inventory already exists" in done["error_message"]
    assert _head(github, "acme-labs/inventory") == other_head


def test_a_secondary_rate_limit_delays_the_redelivery_by_retry_after_then_succeeds(
    client: Any, auth_header: Any, provider: Any, github: Running, engine: sa.Engine, runtime: Runtime
) -> None:
    task = create(client, auth_header(), "Rate Limited")
    assert run_pipeline(runtime, task["task_id"], provider, ("creating_org",))[0].outcome == "succeeded"
    github.app.faults.add(
        {
            "method": "POST",
            "path": r"/generate$",
            "status": 403,
            "times": 1,
            "headers": {"retry-after": "30"},
            "body": {
                "message": "You have exceeded a secondary rate limit.",
                "documentation_url": "https://docs.github.com",
            },
        }
    )
    limited = steps.run_step(runtime, uuid.UUID(task["task_id"]), "forking_template", provider)
    assert limited.outcome == "retry" and "rate limit" in limited.detail
    # The later delivery is scheduled at GitHub's time (Cloud Tasks schedule_time), not the 1 s backoff.
    assert limited.again is not None
    assert 28 <= (limited.again[1] - datetime.now(UTC)).total_seconds() <= 30
    row = step_row(engine, task["task_id"], "forking_template")
    assert row["status"] == "pending" and row["attempts"] == 0  # the attempt was given back
    assert 28 <= row["due_in"] <= 30  # redelivered at GitHub's time, not the step's 1 s backoff

    # An early redelivery is told to wait; once the time has passed, the step succeeds.
    assert steps.run_step(runtime, uuid.UUID(task["task_id"]), "forking_template", provider).outcome == "noop"
    make_due(engine, task["task_id"], "forking_template")
    assert steps.run_step(runtime, uuid.UUID(task["task_id"]), "forking_template", provider).outcome == "succeeded"


def test_an_app_not_installed_fails_at_once_with_the_reason(
    client: Any, auth_header: Any, provider: Any, github: Running, engine: sa.Engine, runtime: Runtime
) -> None:
    github.app.state.add_org("no-app-org", installed=False)
    task = create(client, auth_header(), "Orphan", mode="user", github_owner="no-app-org")
    assert run_pipeline(runtime, task["task_id"], provider, ("creating_org",))[0].outcome == "failed"
    assert step_row(engine, task["task_id"], "creating_org")["attempts"] == 1
    done = client.get(f"/api/v1/tasks/{task['task_id']}", headers=auth_header()).get_json()
    assert done["status"] == "failed"
    assert "GitHub App is not installed on no-app-org" in done["error_message"]
    assert INSTALL_URL in done["error_message"]
    assert all(s["status"] == "skipped" for s in done["steps"][1:])


_NOT_JSON = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Sure! Here is the README: {"}]}}]}


def test_an_invalid_ai_answer_is_asked_again_and_never_committed(
    client: Any, auth_header: Any, provider: Any, github: Running, gemini: Any, engine: sa.Engine, runtime: Runtime
) -> None:
    task = create(client, auth_header(), "Bad Answers")
    run_pipeline(runtime, task["task_id"], provider, ("creating_org", "forking_template"))
    full = f"{PLANTER_ORG}/bad-answers"
    initial = _head(github, full)

    # Three unusable answers: the attempt fails (retried later with backoff), nothing committed,
    # and the three calls are metered all the same.
    with gemini.lock:
        gemini.faults.append(_gemini_fault(times=3))
    assert steps.run_step(runtime, uuid.UUID(task["task_id"]), "customizing_project", provider).outcome == "retry"
    assert _head(github, full) == initial
    assert "without a valid plan" in step_row(engine, task["task_id"], "customizing_project")["error"]
    assert _usage(engine, task["task_id"]) == 3

    # One unusable answer, then a valid one: asked again within the attempt, one commit.
    with gemini.lock:
        gemini.faults.append(_gemini_fault(times=1))
    make_due(engine, task["task_id"], "customizing_project")
    assert steps.run_step(runtime, uuid.UUID(task["task_id"]), "customizing_project", provider).outcome == "succeeded"
    result = step_row(engine, task["task_id"], "customizing_project")["result"]
    assert result["ai_calls"] == 2 and result["usage"] == {"ai_operations": 2}
    assert _head(github, full) == result["commit_sha"] != initial
    assert _usage(engine, task["task_id"]) == 5


def _gemini_fault(times: int) -> Any:
    import re

    from dev.standins.faults import Fault

    return Fault(method="POST", path=re.compile("generateContent"), status=200, times=times, headers={}, body=_NOT_JSON)


def _usage(engine: sa.Engine, task_id: str) -> int:
    with engine.connect() as conn:
        used: int = conn.execute(
            sa.text(
                "SELECT coalesce(sum(ai_operations_count), 0) FROM usage u"
                " JOIN tasks t ON t.user_id = u.user_id WHERE t.id = :t"
            ),
            {"t": task_id},
        ).scalar_one()
    return used


def test_an_empty_new_repository_and_a_5xx_are_retried_with_backoff_without_duplicates(
    client: Any, auth_header: Any, provider: Any, github: Running, engine: sa.Engine, runtime: Runtime
) -> None:
    task = create(client, auth_header(), "Slow Copy")
    run_pipeline(runtime, task["task_id"], provider, ("creating_org", "forking_template"))
    full = f"{PLANTER_ORG}/slow-copy"
    # Right after creation GitHub may answer 409 "Git Repository is empty" for a moment.
    github.app.faults.add(
        {"method": "GET", "path": "/git/ref/", "status": 409, "body": {"message": "Git Repository is empty."}}
    )
    assert steps.run_step(runtime, uuid.UUID(task["task_id"]), "customizing_project", provider).outcome == "retry"
    row = step_row(engine, task["task_id"], "customizing_project")
    assert row["attempts"] == 1 and "not ready" in row["error"] and 0 < row["due_in"] <= 1
    make_due(engine, task["task_id"], "customizing_project")
    run_pipeline(runtime, task["task_id"], provider, ("customizing_project", "creating_gcp_project", "deploying"))

    # An earlier attempt opened issue 1 of 3 and died; then GitHub answers 502 once.
    with rest(github.base_url) as http:
        marker = f"<!-- planter:task={task['task_id']} issue=1/3 -->"
        body = {"title": "Opened by an earlier attempt", "body": f"kept\n\n{marker}", "labels": ["planter"]}
        assert http.post(f"/repos/{full}/issues", json=body).status_code == 201
    github.app.faults.add({"method": "POST", "path": "/issues$", "status": 502, "times": 1})
    assert steps.run_step(runtime, uuid.UUID(task["task_id"]), "creating_issues", provider).outcome == "retry"
    make_due(engine, task["task_id"], "creating_issues")
    assert steps.run_step(runtime, uuid.UUID(task["task_id"]), "creating_issues", provider).outcome == "succeeded"
    opened = _issues(github, full)
    assert len(opened) == 3 and "Opened by an earlier attempt" in [i["title"] for i in opened]
    result = step_row(engine, task["task_id"], "creating_issues")["result"]
    assert [i["number"] for i in result["issues"]] == [1, 2, 3]
    assert result["usage"]["issues_generated"] == 2  # the one already there is not counted again
