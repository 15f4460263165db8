"""Task types through the API and the step engine: POST /api/v1/tasks, task-types, filters, results.

Cloud Tasks is the RecordingEnqueuer; ``drain`` delivers what it recorded, as the queue would.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tests.conftest import RecordingEnqueuer, new_id
from tests.contract import assert_problem
from tests.integration.test_steps import create, deliver, make_due, tick, usage


def drain(client: Any, enqueued: RecordingEnqueuer, start: int = 0) -> int:
    """Deliver every recorded handover from ``start`` on, including the ones they cause."""
    done = start
    while done < len(enqueued.calls):
        task_id, step, generation = enqueued.calls[done]
        assert deliver(client, task_id, step, generation).status_code == 200
        done += 1
    return done


def post_task(client: Any, headers: dict[str, str], body: dict[str, Any], **extra: Any) -> Any:
    return client.post("/api/v1/tasks", json=body, headers={**headers, **extra})


def planted(client: Any, headers: dict[str, str], enqueued: RecordingEnqueuer) -> dict[str, Any]:
    """A completed create_project task."""
    task = create(client, headers, "Planted App")
    drain(client, enqueued, len(enqueued.calls) - 1)
    done: dict[str, Any] = client.get(f"/api/v1/tasks/{task['task_id']}", headers=headers).get_json()
    assert done["status"] == "completed", done
    return done


def run(client: Any, headers: dict[str, str], enqueued: RecordingEnqueuer, body: dict[str, Any]) -> dict[str, Any]:
    response = post_task(client, headers, body)
    assert response.status_code == 202, response.get_json()
    assert response.headers["Location"] == f"/api/v1/tasks/{response.get_json()['task_id']}"
    drain(client, enqueued, len(enqueued.calls) - 1)
    task: dict[str, Any] = client.get(f"/api/v1/tasks/{response.get_json()['task_id']}", headers=headers).get_json()
    return task


def test_task_types_list_each_type_with_its_schema_and_steps(client: Any, auth_header: Any) -> None:
    response = client.get("/api/v1/task-types", headers=auth_header())
    assert response.status_code == 200
    types = {t["type"]: t for t in response.get_json()["task_types"]}
    assert set(types) == {"create_project", "redeploy", "generate_issues", "teardown"}
    assert types["teardown"]["steps"] == ["deleting_gcp_project", "archiving_repository"]
    assert types["redeploy"]["steps"] == ["building_release", "redeploying"]
    assert "project_task_id" in types["generate_issues"]["payload_schema"]["required"]
    assert types["generate_issues"]["payload_schema"]["properties"]["count"]["maximum"] == 10
    assert types["create_project"]["payload_schema"]["required"] == ["project_name"]


def test_redeploy_runs_its_own_steps_on_its_priority_queue_and_keeps_a_result(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer
) -> None:
    headers = auth_header()
    project = planted(client, headers, enqueued)
    body = {"type": "redeploy", "payload": {"project_task_id": project["task_id"]}, "priority": "high"}
    first = len(enqueued.calls)
    task = run(client, headers, enqueued, body)
    assert task["type"] == "redeploy" and task["priority"] == "high" and task["status"] == "completed"
    assert task["payload"] == {"project_task_id": project["task_id"]}
    assert [s["name"] for s in task["steps"]] == ["building_release", "redeploying"]
    assert enqueued.priorities[first:] == ["high", "high"]
    assert task["result"]["deployment_url"] == project["deployment_url"]
    assert task["result"]["release_id"].startswith("r-")
    assert task["project_name"] == project["project_name"] and task["error"] is None
    assert task["message"] == "Redeployed" and task["progress_percent"] == 100


def test_generate_issues_meters_what_it_opened(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    headers = auth_header()
    project = planted(client, headers, enqueued)
    before = usage(engine)[0]
    body = {"type": "generate_issues", "payload": {"project_task_id": project["task_id"], "count": 3, "focus": "tests"}}
    task = run(client, headers, enqueued, body)
    assert task["status"] == "completed", task
    assert task["result"]["issues_opened"] == 3
    assert all(u.startswith(project["repo_url"] + "/issues/") for u in task["result"]["issue_urls"])
    after = usage(engine)[0]
    assert (after[1] - before[1], after[3] - before[3]) == (1, 3)  # one AI operation, three issues


def test_teardown_reports_what_it_shut_down_and_a_second_one_changes_nothing(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    headers = auth_header()
    project = planted(client, headers, enqueued)
    body = {"type": "teardown", "payload": {"project_task_id": project["task_id"]}}
    first = run(client, headers, enqueued, body)
    assert first["status"] == "completed", first
    assert first["result"] == {
        "gcp_project_id": project["gcp_project_id"],
        "gcp_project": "deleted",
        "repo_url": project["repo_url"],
        "repository": "archived",
    }
    metered = usage(engine)
    # A redelivery of a finished step is a no-op; so is a second teardown.
    assert deliver(client, first["task_id"], "archiving_repository").get_json()["outcome"] == "noop"
    second = run(client, headers, enqueued, body)
    assert second["status"] == "completed" and second["result"] == first["result"]
    assert usage(engine) == metered
    # What was torn down cannot be redeployed or given issues any more.
    for task_type, extra in (("redeploy", {}), ("generate_issues", {"count": 1})):
        payload = {"project_task_id": project["task_id"], **extra}
        assert_problem(post_task(client, headers, {"type": task_type, "payload": payload}), 409)


def test_teardown_takes_a_failed_project_and_leaves_alone_what_was_never_made(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    headers = auth_header()
    project = create(client, headers, "Broken App", fail_step="forking_template", failures=100)
    for _ in range(5):
        deliver(client, project["task_id"], enqueued.calls[-1][1], enqueued.calls[-1][2])
        make_due(engine, project["task_id"], "forking_template")
        deliver(client, project["task_id"], "forking_template")
    failed = client.get(f"/api/v1/tasks/{project['task_id']}", headers=headers).get_json()
    assert failed["status"] == "failed"
    redeploy = post_task(client, headers, {"type": "redeploy", "payload": {"project_task_id": project["task_id"]}})
    assert_problem(redeploy, 409)
    task = run(client, headers, enqueued, {"type": "teardown", "payload": {"project_task_id": project["task_id"]}})
    assert task["status"] == "completed"
    assert task["result"]["gcp_project"] == "absent" and task["result"]["repository"] == "absent"


def test_a_project_still_running_cannot_be_redeployed(client: Any, auth_header: Any, enqueued: Any) -> None:
    headers = auth_header()
    project = create(client, headers)
    response = post_task(client, headers, {"type": "redeploy", "payload": {"project_task_id": project["task_id"]}})
    problem = assert_problem(response, 409)
    assert "initializing" in problem["detail"]


def test_other_users_and_unknown_project_tasks_are_404(client: Any, auth_header: Any, enqueued: Any) -> None:
    project = planted(client, auth_header(), enqueued)
    for payload in ({"project_task_id": project["task_id"]}, {"project_task_id": new_id()}):
        response = post_task(client, auth_header("mallory@example.test"), {"type": "teardown", "payload": payload})
        assert_problem(response, 404)
    # A task that is not a project task is not one either.
    redeploy = run(
        client, auth_header(), enqueued, {"type": "redeploy", "payload": {"project_task_id": project["task_id"]}}
    )
    response = post_task(
        client, auth_header(), {"type": "teardown", "payload": {"project_task_id": redeploy["task_id"]}}
    )
    assert_problem(response, 404)


def test_payloads_invalid_for_their_type_are_422_naming_the_field(client: Any, auth_header: Any, enqueued: Any) -> None:
    headers = auth_header()
    cases = [
        ({"type": "redeploy", "payload": {}}, "payload.project_task_id"),
        ({"type": "generate_issues", "payload": {"project_task_id": new_id(), "count": 11}}, "payload.count"),
        ({"type": "generate_issues", "payload": {"project_task_id": new_id(), "count": "3"}}, "payload.count"),
        ({"type": "teardown", "payload": {"project_task_id": "nope"}}, "payload.project_task_id"),
        ({"type": "teardown", "payload": {"project_task_id": new_id(), "force": True}}, "payload.force"),
        ({"type": "create_project", "payload": {"project_name": "!!!"}}, "payload.project_name"),
        ({"type": "explode", "payload": {}}, "type"),
        ({"type": "redeploy", "payload": {"project_task_id": new_id()}, "priority": "urgent"}, "priority"),
    ]
    for body, field in cases:
        problem = assert_problem(post_task(client, headers, body), 422)
        assert field in problem["errors"], (body, problem)
    assert enqueued.calls == []


def test_create_project_through_tasks_with_a_priority_filters_and_idempotency(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer
) -> None:
    headers = auth_header()
    body = {"type": "create_project", "payload": {"project_name": "Low App", "mode": "user"}, "priority": "low"}
    first = post_task(client, headers, body, **{"Idempotency-Key": "k1"})
    again = post_task(client, headers, body, **{"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 202
    task = first.get_json()
    assert again.get_json()["task_id"] == task["task_id"] and len(enqueued.calls) == 1
    assert enqueued.priorities == ["low"]
    assert task["payload"] == {"project_name": "Low App", "project_description": "", "mode": "user", "private": True}
    other = {**body, "priority": "high"}
    assert_problem(post_task(client, headers, other, **{"Idempotency-Key": "k1"}), 422)
    create(client, headers, "Normal App")
    listed = client.get("/api/v1/tasks?priority=low", headers=headers).get_json()["tasks"]
    assert [t["task_id"] for t in listed] == [task["task_id"]]
    assert len(client.get("/api/v1/tasks?type=create_project", headers=headers).get_json()["tasks"]) == 2
    assert client.get("/api/v1/tasks?type=teardown", headers=headers).get_json()["tasks"] == []
    assert_problem(client.get("/api/v1/tasks?type=nonsense", headers=headers), 422)


def test_quota_refuses_other_types_as_it_refuses_projects(
    client: Any, auth_header: Any, enqueued: Any, engine: sa.Engine
) -> None:
    headers = auth_header()
    project = planted(client, headers, enqueued)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                # A limit of what the planted project already used: this month's operations are spent.
                "INSERT INTO subscriptions (user_id, tier, monthly_operations_limit)"
                " SELECT u.id, 'free', g.ai_operations_count FROM users u JOIN usage g ON g.user_id = u.id"
                " WHERE u.email = 'alice@example.test'"
            )
        )
    body = {"type": "generate_issues", "payload": {"project_task_id": project["task_id"], "count": 1}}
    assert_problem(post_task(client, headers, body), 429)


def test_dashboard_figures_by_type(client: Any, auth_header: Any, enqueued: RecordingEnqueuer) -> None:
    headers = auth_header()
    project = planted(client, headers, enqueued)
    run(client, headers, enqueued, {"type": "redeploy", "payload": {"project_task_id": project["task_id"]}})

    def completed(query: str) -> float:
        url = f"/api/v1/dashboard/time-series?metric=tasks_completed&period=daily&days=2{query}"
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.get_json()
        return float(sum(p["value"] for p in response.get_json()["data_points"]))

    assert (completed(""), completed("&type=redeploy"), completed("&type=create_project")) == (2, 1, 1)
    assert completed("&type=teardown") == 0
    health = client.get("/api/v1/dashboard/metrics?type=redeploy", headers=headers).get_json()["project_health"]
    assert health["tasks_completed_today"] == 1
    everything = client.get("/api/v1/dashboard/metrics", headers=headers).get_json()["project_health"]
    assert everything["tasks_completed_today"] == 2
    assert_problem(client.get("/api/v1/dashboard/metrics?type=nope", headers=headers), 422)


def test_an_active_task_of_another_type_gets_an_estimate_from_its_own_steps(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer
) -> None:
    headers = auth_header()
    project = planted(client, headers, enqueued)
    task = post_task(client, headers, {"type": "teardown", "payload": {"project_task_id": project["task_id"]}})
    active = client.get("/api/v1/dashboard/active-tasks", headers=headers).get_json()["active_tasks"]
    assert [a["task_id"] for a in active] == [task.get_json()["task_id"]]
    assert active[0]["current_step"] == "deleting_gcp_project" and active[0]["estimated_completion_at"]


def test_the_reaper_and_cancel_treat_every_type_as_they_treat_projects(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    headers = auth_header()
    project = planted(client, headers, enqueued)
    body = {"type": "redeploy", "payload": {"project_task_id": project["task_id"]}, "priority": "high"}
    task_id = post_task(client, headers, body).get_json()["task_id"]
    # Its first delivery was lost long ago: the tick sends it again, into the high queue.
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE task_steps SET due_at = now() - interval '1 hour' WHERE task_id = :t AND position = 0"),
            {"t": task_id},
        )
    calls = len(enqueued.calls)
    assert tick(client)["reenqueued"] == 1
    assert enqueued.calls[calls:] == [(task_id, "building_release", 1)] and enqueued.priorities[-1] == "high"
    assert deliver(client, task_id, "building_release", 1).status_code == 200
    cancelled = client.post(f"/api/v1/tasks/{task_id}/cancel", headers=headers).get_json()
    assert cancelled["status"] == "cancelled"
    assert [s["status"] for s in cancelled["steps"]] == ["succeeded", "skipped"]
    assert deliver(client, task_id, "redeploying").get_json()["outcome"] == "noop"


def test_the_simulate_guardrails_hold_for_tasks_and_jobs_as_for_projects(
    client_with: Any, auth_header: Any, engine: sa.Engine
) -> None:
    """Issue 12's guardrails (simulate refused where not allowed, step_seconds capped) on every way a
    task starts, not only the shorthand: a slow or refused simulation must not enter by the side door."""
    headers = auth_header()
    slow = {"type": "create_project", "payload": {"project_name": "Slow", "simulate": {"step_seconds": 31}}}
    capped = client_with(simulate_max_step_seconds=30.0)
    problem = assert_problem(post_task(capped, headers, slow), 422)
    assert "payload.simulate.step_seconds" in problem["errors"] and "30" in problem["detail"]
    job = {"name": "slow", "schedule": "* * * * *", "task": slow}
    problem = assert_problem(capped.post("/api/v1/jobs", json=job, headers=headers), 422)
    assert "task.payload.simulate.step_seconds" in problem["errors"]

    quick = {"type": "create_project", "payload": {"project_name": "Quick", "simulate": {"step_seconds": 1}}}
    refusing = client_with(allow_simulate=False)
    assert "payload.simulate" in assert_problem(post_task(refusing, headers, quick), 422)["errors"]
    job = {"name": "quick", "schedule": "* * * * *", "task": quick}
    problem = assert_problem(refusing.post("/api/v1/jobs", json=job, headers=headers), 422)
    assert "task.payload.simulate" in problem["errors"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT (SELECT count(*) FROM tasks) + (SELECT count(*) FROM jobs)")).scalar() == 0
    # Within the cap, where allowed, both are accepted.
    assert post_task(capped, headers, quick).status_code == 202
    assert capped.post("/api/v1/jobs", json={**job, "name": "ok"}, headers=headers).status_code == 201


def test_a_create_project_task_checks_its_template_and_owner_as_the_shorthand_does(
    client: Any, auth_header: Any, enqueued: RecordingEnqueuer, engine: sa.Engine
) -> None:
    """Its payload is the body of POST /api/v1/projects (API.md), so the same bad choices are 422 at
    once, not a task that fails at its forking step; and a job's task is checked the same way."""
    headers = auth_header()
    cases = [
        ({"project_name": "x", "template": "nobody/nothing"}, "payload.template"),
        ({"project_name": "x", "github_owner": "someone-else"}, "payload.github_owner"),  # mode saas
    ]
    for payload, field in cases:
        shorthand = assert_problem(client.post("/api/v1/projects", json=payload, headers=headers), 422)
        problem = assert_problem(post_task(client, headers, {"type": "create_project", "payload": payload}), 422)
        assert field in problem["errors"] and problem["detail"] == shorthand["detail"], problem
        job = {"name": "j", "schedule": "* * * * *", "task": {"type": "create_project", "payload": payload}}
        assert f"task.{field}" in assert_problem(client.post("/api/v1/jobs", json=job, headers=headers), 422)["errors"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT (SELECT count(*) FROM tasks) + (SELECT count(*) FROM jobs)")).scalar() == 0
    # A template of the list is taken, and kept on the task for its forking step.
    template = client.get("/api/v1/templates", headers=headers).get_json()["templates"][-1]["name"]
    body = {"type": "create_project", "payload": {"project_name": "Chosen", "template": template}}
    assert post_task(client, headers, body).get_json()["payload"]["template"] == template
