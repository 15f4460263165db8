from __future__ import annotations

from typing import Any


def test_create_then_read_task(client: Any, auth_header: Any, enqueued: Any) -> None:
    created = client.post("/api/v1/projects", json={"project_name": "My App"}, headers=auth_header())
    assert created.status_code == 202, created.get_json()
    task = created.get_json()
    assert created.headers["Location"] == f"/api/v1/tasks/{task['task_id']}"
    assert task["status"] == "initializing"
    assert task["steps"][0]["name"] == "creating_org"
    assert enqueued.calls == [(task["task_id"], "creating_org", 0)]
    read = client.get(f"/api/v1/tasks/{task['task_id']}", headers=auth_header())
    assert read.status_code == 200
    assert read.get_json()["task_id"] == task["task_id"]
    assert client.get("/healthz").get_json() == {"status": "ok", "database": "ok"}
