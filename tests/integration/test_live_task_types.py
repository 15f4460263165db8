"""The live provider's steps of generate_issues and teardown, through the steps service and a real
PostgreSQL, against the GitHub and Gemini stand-ins: issues opened once, a repository archived once."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from common.providers import StepContext
from common.runtime import Runtime
from common.services import steps
from dev.standins.github.server import Running, start
from dev.standins.github.templates import PLANTER_ORG
from tests.live_support import create, live_provider, make_due, rest, run_pipeline, step_row


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


def _planted(runtime: Runtime, client: Any, headers: dict[str, str], provider: Any, name: str) -> str:
    task = create(client, headers, name)
    assert {r.outcome for r in run_pipeline(runtime, task["task_id"], provider)} == {"succeeded"}
    return str(task["task_id"])


def _new_task(client: Any, headers: dict[str, str], task_type: str, payload: dict[str, Any]) -> str:
    response = client.post("/api/v1/tasks", json={"type": task_type, "payload": payload}, headers=headers)
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["task_id"])


def _issues(github: Running, full: str) -> list[dict[str, Any]]:
    with rest(github.base_url) as http:
        found: list[dict[str, Any]] = http.get(f"/repos/{full}/issues", params={"state": "all", "per_page": 100}).json()
    return found


def _context(task_id: str, step: str, payload: dict[str, Any], facts: dict[str, Any]) -> StepContext:
    """A run of the provider again for a step whose record was lost (a redelivery after success)."""
    return StepContext(
        task_id=task_id,
        step=step,
        attempt=2,
        project_name="Again",
        project_description="",
        mode="saas",
        payload=payload,
        facts=facts,
        callback_token=lambda: "",
    )


def test_generate_issues_opens_count_new_issues_once(
    client: Any, auth_header: Any, provider: Any, github: Running, runtime: Runtime
) -> None:
    project = _planted(runtime, client, auth_header(), provider, "Book Club")
    full = f"{PLANTER_ORG}/book-club"
    before = {i["number"] for i in _issues(github, full)}
    payload = {"project_task_id": project, "count": 4, "focus": "accessibility of the reading list"}
    task_id = _new_task(client, auth_header(), "generate_issues", payload)

    assert steps.run_step(runtime, uuid.UUID(task_id), "generating_issues", provider).outcome == "succeeded"
    done = client.get(f"/api/v1/tasks/{task_id}", headers=auth_header()).get_json()
    assert done["status"] == "completed", done
    step = done["steps"][0]["result"]
    assert step["usage"] == {"ai_operations": 1, "issues_generated": 4}
    new = [i for i in _issues(github, full) if i["number"] not in before]
    assert len(new) == 4
    assert all(f"planter:task={task_id}" in i["body"] for i in new)
    assert sorted(done["result"]["issue_urls"]) == sorted(i["html_url"] for i in new)
    assert done["result"]["issues_opened"] == 4

    # Delivered again after success: a no-op; the provider run again adopts, with no AI call.
    assert steps.run_step(runtime, uuid.UUID(task_id), "generating_issues", provider).outcome == "noop"
    facts = {"project_id": full, "repo_url": done["result"]["repo_url"]}
    again = provider.run(_context(task_id, "generating_issues", payload, facts))
    assert again.usage == {}
    assert again.result["adopted"] is True
    assert sorted(i["number"] for i in again.result["issues"]) == sorted(i["number"] for i in new)
    assert len(_issues(github, full)) == len(before) + 4


def test_a_half_done_generate_issues_opens_only_the_missing_ones(
    client: Any, auth_header: Any, provider: Any, github: Running, engine: sa.Engine, runtime: Runtime
) -> None:
    project = _planted(runtime, client, auth_header(), provider, "Bike Share")
    full = f"{PLANTER_ORG}/bike-share"
    task_id = _new_task(client, auth_header(), "generate_issues", {"project_task_id": project, "count": 3})
    # An earlier attempt opened issue 2 of 3 and died; then GitHub answers 502 once.
    with rest(github.base_url) as http:
        marker = f"<!-- planter:task={task_id} issue=2/3 -->"
        body = {"title": "Opened by an earlier attempt", "body": f"kept\n\n{marker}", "labels": ["planter"]}
        assert http.post(f"/repos/{full}/issues", json=body).status_code == 201
    github.app.faults.add({"method": "POST", "path": "/issues$", "status": 502, "times": 1})
    assert steps.run_step(runtime, uuid.UUID(task_id), "generating_issues", provider).outcome == "retry"
    make_due(engine, task_id, "generating_issues")
    assert steps.run_step(runtime, uuid.UUID(task_id), "generating_issues", provider).outcome == "succeeded"

    mine = [i for i in _issues(github, full) if f"planter:task={task_id}" in i["body"]]
    assert len(mine) == 3 and "Opened by an earlier attempt" in [i["title"] for i in mine]
    result = step_row(engine, task_id, "generating_issues")["result"]
    assert result["usage"]["issues_generated"] == 2  # the one already there is not counted again
    assert sorted(i["number"] for i in result["issues"]) == sorted(i["number"] for i in mine)


def test_teardown_archives_the_repository_and_a_second_teardown_is_a_noop(
    client: Any, auth_header: Any, provider: Any, github: Running, engine: sa.Engine, runtime: Runtime
) -> None:
    project = _planted(runtime, client, auth_header(), provider, "Old Shop")
    full = f"{PLANTER_ORG}/old-shop"
    first = _new_task(client, auth_header(), "teardown", {"project_task_id": project})
    outcomes = [steps.run_step(runtime, uuid.UUID(first), s, provider).outcome for s in TEARDOWN]
    assert outcomes == ["succeeded", "succeeded"]
    done = client.get(f"/api/v1/tasks/{first}", headers=auth_header()).get_json()
    assert done["status"] == "completed", done
    assert done["result"]["repository"] == "archived"
    by_name = {s["name"]: s for s in done["steps"]}
    assert by_name["deleting_gcp_project"]["status"] == "skipped"  # Google Cloud is not configured here
    assert by_name["archiving_repository"]["result"]["state"] == "archived"
    with rest(github.base_url) as http:
        assert http.get(f"/repos/{full}").json()["archived"] is True
        # As on GitHub, the archived repository is read-only.
        refused = http.post(f"/repos/{full}/issues", json={"title": "Too late now", "body": "x"})
        assert refused.status_code == 403 and "archived" in refused.json()["message"]
        patched = http.patch(f"/repos/{full}", json={"archived": True})
        assert patched.status_code == 403

    # A second teardown (the first one completed, so it is accepted) changes nothing.
    second = _new_task(client, auth_header(), "teardown", {"project_task_id": project})
    assert [steps.run_step(runtime, uuid.UUID(second), s, provider).outcome for s in TEARDOWN] == [
        "succeeded",
        "succeeded",
    ]
    again = step_row(engine, second, "archiving_repository")["result"]
    assert again["state"] == "already_archived"


def test_teardown_of_a_repository_already_gone_succeeds(
    client: Any, auth_header: Any, provider: Any, github: Running, engine: sa.Engine, runtime: Runtime
) -> None:
    project = _planted(runtime, client, auth_header(), provider, "Gone Soon")
    task_id = _new_task(client, auth_header(), "teardown", {"project_task_id": project})
    github.app.faults.add({"method": "GET", "path": f"/repos/{PLANTER_ORG}/gone-soon$", "status": 404, "times": 1})
    assert [steps.run_step(runtime, uuid.UUID(task_id), s, provider).outcome for s in TEARDOWN] == [
        "succeeded",
        "succeeded",
    ]
    assert step_row(engine, task_id, "archiving_repository")["result"]["state"] == "absent"


def test_generate_issues_on_an_archived_repository_fails_at_once_with_the_reason(
    client: Any, auth_header: Any, provider: Any, github: Running, gemini: Any, engine: sa.Engine, runtime: Runtime
) -> None:
    project = _planted(runtime, client, auth_header(), provider, "Archived Elsewhere")
    full = f"{PLANTER_ORG}/archived-elsewhere"
    task_id = _new_task(client, auth_header(), "generate_issues", {"project_task_id": project, "count": 2})
    with rest(github.base_url) as http:  # archived by a person on GitHub, not by a Planter teardown
        assert http.patch(f"/repos/{full}", json={"archived": True}).status_code == 200
    asked_before = len(gemini.requests)
    assert steps.run_step(runtime, uuid.UUID(task_id), "generating_issues", provider).outcome == "failed"
    row = step_row(engine, task_id, "generating_issues")
    assert row["attempts"] == 1 and "is archived" in row["error"]
    assert len(gemini.requests) == asked_before  # refused before the AI was asked (nothing metered)
    assert not [i for i in _issues(github, full) if f"planter:task={task_id}" in i["body"]]


TEARDOWN = ("deleting_gcp_project", "archiving_repository")


@dataclasses.dataclass(frozen=True)
class CancelledWhileRunning:
    """The provider, with the user cancelling the task while the step runs (after its work is done)."""

    provider: Any
    cancel: Callable[[], None]

    def run(self, ctx: StepContext) -> Any:
        outcome = self.provider.run(ctx)
        self.cancel()
        return outcome

    def check(self, ctx: StepContext) -> Any:
        return self.provider.check(ctx)


def test_a_repository_made_by_a_step_the_user_cancelled_is_torn_down(
    client: Any, auth_header: Any, provider: Any, github: Running, engine: sa.Engine, runtime: Runtime
) -> None:
    task_id = create(client, auth_header(), "Changed My Mind")["task_id"]
    assert run_pipeline(runtime, task_id, provider, ("creating_org",))[0].outcome == "succeeded"

    def cancel() -> None:
        assert client.post(f"/api/v1/tasks/{task_id}/cancel", headers=auth_header()).status_code == 200

    steps.run_step(runtime, uuid.UUID(task_id), "forking_template", CancelledWhileRunning(provider, cancel))
    project = client.get(f"/api/v1/tasks/{task_id}", headers=auth_header()).get_json()
    assert project["status"] == "cancelled"
    # The step's result lists the repository it made (the task never advanced past it).
    made = {s["name"]: s["result"] for s in project["steps"]}["forking_template"]
    full = f"{PLANTER_ORG}/changed-my-mind"
    assert made["full_name"] == full

    teardown = _new_task(client, auth_header(), "teardown", {"project_task_id": task_id})
    assert [steps.run_step(runtime, uuid.UUID(teardown), s, provider).outcome for s in TEARDOWN] == [
        "succeeded",
        "succeeded",
    ]
    assert step_row(engine, teardown, "archiving_repository")["result"]["state"] == "archived"
    with rest(github.base_url) as http:
        assert http.get(f"/repos/{full}").json()["archived"] is True
