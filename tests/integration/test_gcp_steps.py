"""The live Google Cloud steps against the Google Cloud stand-in, through the steps service and a
real PostgreSQL; Planter's API is served over real HTTP so the stand-in's Cloud Build can post its
progress and outcome callbacks to it, as a build does."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from common.gcp.builds import attempt_tag, build_tags, task_tag
from common.gcp.client import GcpClient
from common.providers import HandedOff, StepContext, StepOutcome
from common.providers.live import LiveProvider
from common.providers.live_gcp import GcpConfig, GcpSteps
from common.runtime import Runtime
from common.services import steps
from dev.stack import free_port
from dev.standins.gcp.server import GcpStandIn
from dev.standins.github.server import Running, start
from tests.conftest import RecordingEnqueuer, callback_token
from tests.integration.test_steps import progress_rows
from tests.live_support import create, live_provider, make_due, rest, step_row

PARENT = "folders/000000000000"
BILLING = "billingAccounts/000000-000000-000000"
BEFORE_GCP = ("creating_org", "forking_template", "customizing_project")


@pytest.fixture(scope="module")
def github_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start(tmp_path_factory.mktemp("github"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def gcp_server() -> Iterator[GcpStandIn]:
    standin = GcpStandIn(free_port()).start()
    yield standin
    standin.stop()


@pytest.fixture
def gcp(gcp_server: GcpStandIn) -> GcpStandIn:
    httpx.delete(f"{gcp_server.base_url}/_faults")
    return gcp_server


@pytest.fixture
def planter_url(client: Any) -> Iterator[str]:
    """Planter's functions on a real port (the same app and database as `client`)."""
    server = make_server("127.0.0.1", free_port(), client.application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def provider(github_server: Running, gemini: Any, gcp: GcpStandIn, planter_url: str) -> LiveProvider:
    config = GcpConfig(
        parent=PARENT,
        billing_account=BILLING,
        region="us-central1",
        callback_base_url=planter_url,
        check_after_seconds=2,
    )
    steps_ = GcpSteps(config=config, gcp=GcpClient(base_url=gcp.base_url, token=lambda: None))
    return dataclasses.replace(live_provider(github_server.base_url, gemini.base_url), gcp=steps_)


def run(runtime: Runtime, task_id: str, name: str, provider: LiveProvider) -> steps.StepResult:
    return steps.run_step(runtime, uuid.UUID(task_id), name, provider)


def wait_for(engine: sa.Engine, task_id: str, step: str, status: str, seconds: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        row = step_row(engine, task_id, step)
        if row["status"] == status or time.monotonic() > deadline:
            return row
        time.sleep(0.05)


def wait_build_done(gcp: GcpStandIn, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with gcp.state.lock:
            if all(b["status"] in ("SUCCESS", "FAILURE") for b in gcp.state.builds.values()):
                return
        time.sleep(0.05)
    raise AssertionError("the stand-in's builds did not finish")


def to_gcp_project(runtime: Runtime, client: Any, headers: dict[str, str], provider: LiveProvider, name: str) -> str:
    task = create(client, headers, name)
    task_id: str = task["task_id"]
    for step in (*BEFORE_GCP, "creating_gcp_project"):
        assert run(runtime, task_id, step, provider).outcome == "succeeded", step
    return task_id


def test_the_whole_pipeline_deploys_with_the_builds_own_progress_in_the_history(
    client: Any, auth_header: Any, provider: LiveProvider, gcp: GcpStandIn, engine: sa.Engine, runtime: Runtime
) -> None:
    task_id = to_gcp_project(runtime, client, auth_header(), provider, "Garden Planner")
    project = step_row(engine, task_id, "creating_gcp_project")["result"]
    assert project["gcp_project_id"] == "garden-planner" and project["parent"] == PARENT
    assert gcp.state.projects["garden-planner"]["labels"] == {"planter-task": task_id}
    assert gcp.state.billing["garden-planner"]["billingAccountName"] == BILLING
    assert "run.googleapis.com" in gcp.state.enabled["garden-planner"]

    assert run(runtime, task_id, "deploying", provider).outcome == "waiting"
    row = wait_for(engine, task_id, "deploying", "succeeded")
    assert row["status"] == "succeeded", row
    assert row["result"]["build_id"] and row["result"]["log_url"].startswith(gcp.base_url)
    assert row["result"]["service_url"].endswith(".run.app")
    assert run(runtime, task_id, "creating_issues", provider).outcome == "succeeded"

    done = client.get(f"/api/v1/tasks/{task_id}", headers=auth_header()).get_json()
    assert done["status"] == "completed"
    assert done["gcp_project_id"] == "garden-planner"
    assert done["deployment_url"] == row["result"]["service_url"]
    history = [(r[1], r[2], r[3]) for r in progress_rows(engine, task_id)]
    phases = [h[0] for h in history]
    between = history[phases.index("deploying") + 1 : phases.index("completed")]
    assert [(s, p, m) for s, p, m in between if m.startswith("Cloud Build")] == [
        ("deploying", 78, "Cloud Build: building"),
        ("deploying", 81, "Cloud Build: pushing"),
        ("deploying", 84, "Cloud Build: deploying"),
    ]
    # The user sees the same history through the API, oldest first.
    shown = client.get(f"/api/v1/tasks/{task_id}/progress", headers=auth_header()).get_json()["progress"]
    assert [(r["status"], r["progress_percent"], r["message"]) for r in shown] == history
    # The build carries the task, the step (what any later attempt looks for) and its attempt.
    build = gcp.state.builds[row["result"]["build_id"]]
    assert build["tags"] == [
        f"planter-task-{task_id}",
        f"planter-deploying-{task_id}",
        f"planter-deploying-{task_id}-a1",
    ]


def test_a_lost_final_callback_is_found_by_the_scheduled_check(
    client: Any,
    auth_header: Any,
    provider: LiveProvider,
    gcp: GcpStandIn,
    engine: sa.Engine,
    enqueued: RecordingEnqueuer,
    runtime: Runtime,
) -> None:
    task_id = to_gcp_project(runtime, client, auth_header(), provider, "Lost Callback")
    httpx.post(f"{gcp.base_url}/_faults", json={"lose_final_callback": True, "times": 1})
    before = datetime.now(UTC)
    handed = run(runtime, task_id, "deploying", provider)
    after = datetime.now(UTC)
    assert handed.outcome == "waiting"
    # The hand-off itself scheduled the check: a delayed delivery of the same step, check_after (2 s) later.
    [(step, at, suffix)] = [(c[1], c[3], c[4]) for c in enqueued.scheduled if c[0] == task_id]
    assert step == "deploying" and suffix.startswith("check-") and handed.again is not None
    assert at == handed.again[1] and before + timedelta(seconds=1.5) <= at <= after + timedelta(seconds=2)
    wait_build_done(gcp)
    assert step_row(engine, task_id, "deploying")["status"] == "waiting"  # no outcome came
    make_due(engine, task_id, "deploying")
    assert run(runtime, task_id, "deploying", provider).outcome == "succeeded"
    row = step_row(engine, task_id, "deploying")
    assert row["result"]["service_url"].endswith(".run.app") and row["result"]["build_id"]
    # The late outcome of the same success (a retried callback) is a no-op; a different one conflicts.
    token = {"Authorization": f"Bearer {callback_token(task_id)}"}
    same = {"message": "late", "step": "deploying", "step_outcome": "succeeded"}
    assert client.post(f"/api/v1/tasks/{task_id}/progress", json=same, headers=token).status_code == 200
    other = {**same, "step_outcome": "failed", "error": "late failure"}
    assert client.post(f"/api/v1/tasks/{task_id}/progress", json=other, headers=token).status_code == 409


def test_a_taken_project_id_that_is_not_ours_gives_another_id(
    client: Any, auth_header: Any, provider: LiveProvider, gcp: GcpStandIn, engine: sa.Engine, runtime: Runtime
) -> None:
    httpx.post(f"{gcp.base_url}/_faults", json={"foreign_project": "taken-name"})
    task_id = to_gcp_project(runtime, client, auth_header(), provider, "Taken Name")
    made = step_row(engine, task_id, "creating_gcp_project")["result"]
    assert made["gcp_project_id"] == f"taken-name-{task_id.replace('-', '')[:8]}"
    assert made["adopted"] is False
    # Another attempt after the project was made adopts our own (a 409, and it carries our label).
    ctx_outcome = provider.gcp.creating_gcp_project(_ctx(task_id, "Taken Name")) if provider.gcp else None
    assert ctx_outcome is not None and ctx_outcome.result is not None
    assert ctx_outcome.result["adopted"] is True and ctx_outcome.result["gcp_project_id"] == made["gcp_project_id"]


def _ctx(task_id: str, name: str) -> StepContext:
    return StepContext(task_id, "creating_gcp_project", 2, name, "", "saas", {}, {}, lambda: "")


def test_a_failing_build_is_retried_then_fails_the_task_with_its_error_and_log(
    client: Any, auth_header: Any, provider: LiveProvider, gcp: GcpStandIn, engine: sa.Engine, runtime: Runtime
) -> None:
    task_id = to_gcp_project(runtime, client, auth_header(), provider, "Broken Build")
    httpx.post(f"{gcp.base_url}/_faults", json={"fail_build": True, "times": 3, "message": "docker build failed"})
    for attempt in range(1, 4):
        assert run(runtime, task_id, "deploying", provider).outcome == "waiting"
        wait_build_done(gcp)
        make_due(engine, task_id, "deploying")
        outcome = run(runtime, task_id, "deploying", provider).outcome  # the check finds the failure
        assert outcome == ("retry" if attempt < 3 else "failed"), (attempt, outcome)
        make_due(engine, task_id, "deploying")
    task = client.get(f"/api/v1/tasks/{task_id}", headers=auth_header()).get_json()
    assert task["status"] == "failed"
    assert "docker build failed" in task["error_message"] and "log: http" in task["error_message"]
    assert len({b["id"] for b in gcp.state.builds.values() if f"planter-task-{task_id}" in b["tags"]}) == 3


def test_callback_tokens_of_another_task_or_expired_are_refused_and_an_outcome_for_a_step_not_waiting_conflicts(
    client: Any,
    auth_header: Any,
    provider: LiveProvider,
    engine: sa.Engine,
    enqueued: RecordingEnqueuer,
    runtime: Runtime,
) -> None:
    task_id = to_gcp_project(runtime, client, auth_header(), provider, "Token Check")
    other = create(client, auth_header(), "Other Task")["task_id"]
    body = {"message": "done", "step": "deploying", "step_outcome": "succeeded"}
    url = f"/api/v1/tasks/{task_id}/progress"
    wrong = {"Authorization": f"Bearer {callback_token(other)}"}
    assert client.post(url, json=body, headers=wrong).status_code == 401
    expired = {"Authorization": f"Bearer {callback_token(task_id, ttl_seconds=-60)}"}
    assert client.post(url, json=body, headers=expired).status_code == 401
    # deploying has not started: it is not waiting.
    right = {"Authorization": f"Bearer {callback_token(task_id)}"}
    answer = client.post(url, json=body, headers=right)
    assert answer.status_code == 409, answer.get_json()
    assert answer.headers["Content-Type"].startswith("application/problem+json")


def test_the_outcome_callback_and_the_check_arriving_together_have_one_effect(
    client: Any,
    auth_header: Any,
    provider: LiveProvider,
    gcp: GcpStandIn,
    engine: sa.Engine,
    enqueued: RecordingEnqueuer,
    planter_url: str,
    runtime: Runtime,
) -> None:
    task_id = to_gcp_project(runtime, client, auth_header(), provider, "Both At Once")
    httpx.post(f"{gcp.base_url}/_faults", json={"lose_final_callback": True, "times": 1})
    assert run(runtime, task_id, "deploying", provider).outcome == "waiting"
    wait_build_done(gcp)
    make_due(engine, task_id, "deploying")
    token = {"Authorization": f"Bearer {callback_token(task_id)}"}
    body = {"message": "late outcome", "step": "deploying", "step_outcome": "succeeded"}
    answers: list[Any] = []
    go = threading.Barrier(2)

    def check() -> None:
        go.wait()
        answers.append(run(runtime, task_id, "deploying", provider).outcome)

    def callback() -> None:
        go.wait()
        answers.append(
            httpx.post(f"{planter_url}/api/v1/tasks/{task_id}/progress", json=body, headers=token).status_code
        )

    threads = [threading.Thread(target=check), threading.Thread(target=callback)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # Whichever decides first ends the step; the other finds it ended (the check: lost or noop).
    assert len(answers) == 2 and 200 in answers, answers
    assert [a for a in answers if a != 200] in (["succeeded"], ["lost"], ["noop"]), answers
    assert step_row(engine, task_id, "deploying")["status"] == "succeeded"
    handed_over = [c for c in enqueued.calls if c[0] == task_id and c[1] == "creating_issues"]
    assert len(handed_over) == 1, enqueued.calls


def test_a_release_build_redeploy_and_teardown_reuse_what_the_project_task_made(
    client: Any, auth_header: Any, provider: LiveProvider, gcp: GcpStandIn, engine: sa.Engine, runtime: Runtime
) -> None:
    task_id = to_gcp_project(runtime, client, auth_header(), provider, "Second Release")
    assert run(runtime, task_id, "deploying", provider).outcome == "waiting"
    first = wait_for(engine, task_id, "deploying", "succeeded")["result"]
    assert provider.gcp is not None
    facts = {"gcp_project_id": first["gcp_project_id"], "repo_url": f"http://127.0.0.1:9/o/{first['service']}"}
    release = provider.gcp.run(_step_ctx(task_id, "building_release", facts))
    assert isinstance(release, HandedOff)
    wait_build_done(gcp)
    built = provider.gcp.check(_step_ctx(task_id, "building_release", facts, release.state))
    assert isinstance(built, StepOutcome) and built.facts["release_id"] != first["build_id"]
    again = provider.gcp.run(_step_ctx(task_id, "redeploying", facts))
    assert isinstance(again, StepOutcome) and again.facts["deployment_url"] == first["service_url"]
    gone = provider.gcp.run(_step_ctx(task_id, "deleting_gcp_project", facts))
    assert isinstance(gone, StepOutcome)
    assert gone.facts == {"gcp_project": "deleted", "gcp_project_id": first["gcp_project_id"]}
    assert gcp.state.projects[first["gcp_project_id"]]["state"] == "DELETE_REQUESTED"
    twice = provider.gcp.run(_step_ctx(task_id, "deleting_gcp_project", facts))
    assert isinstance(twice, StepOutcome) and twice.facts == {"gcp_project": "absent"}


@pytest.mark.parametrize("how", ["failed", "cancelled"])
def test_a_failed_or_cancelled_project_is_torn_down_from_what_its_steps_recorded(
    client: Any,
    auth_header: Any,
    provider: LiveProvider,
    gcp: GcpStandIn,
    github_server: Running,
    engine: sa.Engine,
    runtime: Runtime,
    how: str,
) -> None:
    task_id = to_gcp_project(runtime, client, auth_header(), provider, f"Abandoned {how}")
    if how == "failed":  # Cloud Build refuses the build: the task fails at once, its project and repository made
        httpx.post(f"{gcp.base_url}/_faults", json={"method": "POST", "path": "/builds$", "status": 400, "times": 1})
        assert run(runtime, task_id, "deploying", provider).outcome == "failed"
    else:
        assert client.post(f"/api/v1/tasks/{task_id}/cancel", headers=auth_header()).status_code == 200
    project = client.get(f"/api/v1/tasks/{task_id}", headers=auth_header()).get_json()
    assert project["status"] == how
    made = {s["name"]: s["result"] for s in project["steps"]}
    gcp_project, repository = made["creating_gcp_project"]["gcp_project_id"], made["forking_template"]["full_name"]
    assert gcp.state.projects[gcp_project]["state"] == "ACTIVE"

    answer = client.post(
        "/api/v1/tasks", json={"type": "teardown", "payload": {"project_task_id": task_id}}, headers=auth_header()
    )
    assert answer.status_code == 202, answer.get_json()
    teardown = answer.get_json()["task_id"]
    assert [run(runtime, teardown, s, provider).outcome for s in ("deleting_gcp_project", "archiving_repository")] == [
        "succeeded",
        "succeeded",
    ]
    done = client.get(f"/api/v1/tasks/{teardown}", headers=auth_header()).get_json()
    assert done["status"] == "completed", done
    assert done["result"]["gcp_project_id"] == gcp_project and done["result"]["gcp_project"] == "deleted"
    assert done["result"]["repository"] == "archived"
    assert gcp.state.projects[gcp_project]["state"] == "DELETE_REQUESTED"
    with rest(github_server.base_url) as http:
        assert http.get(f"/repos/{repository}").json()["archived"] is True


def test_a_project_made_by_an_attempt_that_then_failed_is_found_by_its_label_and_torn_down(
    client: Any, auth_header: Any, provider: LiveProvider, gcp: GcpStandIn, engine: sa.Engine, runtime: Runtime
) -> None:
    task = create(client, auth_header(), "Billing Refused")
    task_id = task["task_id"]
    for step in BEFORE_GCP:
        assert run(runtime, task_id, step, provider).outcome == "succeeded", step
    # The project is created, then linking billing is refused: the task fails at once, and the
    # project the attempt made is on no fact of the task.
    refusal = {"method": "PUT", "path": "/billingInfo$", "status": 403, "times": 1}
    httpx.post(f"{gcp.base_url}/_faults", json=refusal)
    assert run(runtime, task_id, "creating_gcp_project", provider).outcome == "failed"
    failed = client.get(f"/api/v1/tasks/{task_id}", headers=auth_header()).get_json()
    assert failed["status"] == "failed" and failed["gcp_project_id"] is None
    with gcp.state.lock:
        ours = [p for p, v in gcp.state.projects.items() if (v.get("labels") or {}).get("planter-task") == task_id]
        others = {p: v.get("state") for p, v in gcp.state.projects.items() if p not in ours}
    assert len(ours) == 1 and gcp.state.projects[ours[0]]["state"] == "ACTIVE"

    answer = client.post(
        "/api/v1/tasks", json={"type": "teardown", "payload": {"project_task_id": task_id}}, headers=auth_header()
    )
    teardown = answer.get_json()["task_id"]
    assert run(runtime, teardown, "deleting_gcp_project", provider).outcome == "succeeded"
    result = step_row(engine, teardown, "deleting_gcp_project")["result"]
    assert result["gcp_project"] == "deleted" and result["gcp_project_id"] == ours[0]
    with gcp.state.lock:
        assert gcp.state.projects[ours[0]]["state"] == "DELETE_REQUESTED"
        assert {p: v.get("state") for p, v in gcp.state.projects.items() if p not in ours} == others


def _step_ctx(task_id: str, step: str, facts: dict[str, Any], handoff: dict[str, Any] | None = None) -> StepContext:
    return StepContext(
        task_id, step, 1, "Second Release", "", "saas", {}, facts, lambda: callback_token(task_id), handoff or {}
    )


class Killed(BaseException):
    """The functions killed mid-step: no exception a step records, so nothing of the run is recorded."""


@dataclasses.dataclass(frozen=True)
class KilledAfterSubmitting:
    """The provider, with its process killed right after the step's work (the build submitted) and
    before the steps service records the hand-off: the step stays running until its lease expires."""

    provider: LiveProvider

    def run(self, ctx: StepContext) -> StepOutcome | HandedOff:
        self.provider.run(ctx)
        raise Killed

    def check(self, ctx: StepContext) -> StepOutcome | HandedOff:
        return self.provider.check(ctx)


def killed_after_submitting(runtime: Runtime, engine: sa.Engine, task_id: str, provider: LiveProvider) -> None:
    """Attempt 1 submits its build and dies; then its lease runs out (time passing, not slept), so
    the next delivery is attempt 2, as the reaper re-enqueues it."""
    with pytest.raises(Killed):
        steps.run_step(runtime, uuid.UUID(task_id), "deploying", KilledAfterSubmitting(provider))
    assert step_row(engine, task_id, "deploying")["status"] == "running"  # nothing was recorded
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE task_steps SET lease_expires_at = now() - interval '1 second' WHERE task_id = :t AND name = :s"
            ),
            {"t": task_id, "s": "deploying"},
        )


def task_builds(gcp: GcpStandIn, task_id: str) -> list[dict[str, Any]]:
    with gcp.state.lock:
        return [dict(b) for b in gcp.state.builds.values() if task_tag(task_id) in b["tags"]]


def test_a_new_attempt_after_a_kill_waits_on_the_running_build_and_starts_no_second_one(
    client: Any, auth_header: Any, provider: LiveProvider, gcp: GcpStandIn, engine: sa.Engine, runtime: Runtime
) -> None:
    task_id = to_gcp_project(runtime, client, auth_header(), provider, "Killed Deploy")
    httpx.post(f"{gcp.base_url}/_faults", json={"hold_build": True, "times": 1})  # it stays QUEUED
    killed_after_submitting(runtime, engine, task_id, provider)
    [first] = task_builds(gcp, task_id)
    assert first["status"] == "QUEUED" and first["tags"] == build_tags(task_id, "deploying", 1)

    assert run(runtime, task_id, "deploying", provider).outcome == "waiting"  # attempt 2 waits on attempt 1's build
    assert [b["id"] for b in task_builds(gcp, task_id)] == [first["id"]]
    httpx.delete(f"{gcp.base_url}/_faults")  # the build runs and posts its outcome
    row = wait_for(engine, task_id, "deploying", "succeeded")
    assert row["status"] == "succeeded" and row["attempts"] == 2, row
    assert row["result"]["build_id"] == first["id"] and row["result"]["service_url"].endswith(".run.app")
    assert [b["id"] for b in task_builds(gcp, task_id)] == [first["id"]]


def test_a_build_that_succeeded_while_no_attempt_waited_ends_the_next_attempt_at_once(
    client: Any, auth_header: Any, provider: LiveProvider, gcp: GcpStandIn, engine: sa.Engine, runtime: Runtime
) -> None:
    task_id = to_gcp_project(runtime, client, auth_header(), provider, "Finished Alone")
    killed_after_submitting(runtime, engine, task_id, provider)
    wait_build_done(gcp)  # its outcome callback found the step running, not waiting: refused
    [first] = task_builds(gcp, task_id)
    assert first["status"] == "SUCCESS" and step_row(engine, task_id, "deploying")["status"] == "running"

    assert run(runtime, task_id, "deploying", provider).outcome == "succeeded"
    row = step_row(engine, task_id, "deploying")
    assert row["attempts"] == 2 and row["result"]["build_id"] == first["id"]
    assert [b["id"] for b in task_builds(gcp, task_id)] == [first["id"]]


def test_a_build_that_failed_while_no_attempt_waited_is_retried_with_a_new_build(
    client: Any, auth_header: Any, provider: LiveProvider, gcp: GcpStandIn, engine: sa.Engine, runtime: Runtime
) -> None:
    task_id = to_gcp_project(runtime, client, auth_header(), provider, "Failed Alone")
    httpx.post(f"{gcp.base_url}/_faults", json={"fail_build": True, "times": 1})
    killed_after_submitting(runtime, engine, task_id, provider)
    wait_build_done(gcp)
    [failed] = task_builds(gcp, task_id)
    assert failed["status"] == "FAILURE"

    assert run(runtime, task_id, "deploying", provider).outcome == "waiting"  # attempt 2: a new build
    row = wait_for(engine, task_id, "deploying", "succeeded")
    assert row["status"] == "succeeded" and row["attempts"] == 2, row
    builds = {b["id"]: b for b in task_builds(gcp, task_id)}
    assert set(builds) == {failed["id"], row["result"]["build_id"]}
    retry = builds[row["result"]["build_id"]]
    assert retry["status"] == "SUCCESS" and attempt_tag(task_id, "deploying", 2) in retry["tags"]
