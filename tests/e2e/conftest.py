"""The whole local stack for end-to-end tests: PostgreSQL, the Cloud Tasks stand-in, the functions
behind the gateway and a fast scheduler tick, started once per module."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from common.auth import SIGNATURE_HEADER, sign_body
from common.queue import step_body
from dev.stack import LocalStack, free_port
from tests.conftest import TEST_JWT_SECRET, TEST_STEP_SECRET, make_token

TERMINAL = ("completed", "failed", "cancelled")
# Short local timings: a dead step is noticed in 3 s, a lost delivery re-enqueued after 3 s.
E2E_ENV = {
    "JWT_SECRET": TEST_JWT_SECRET,
    "STEP_SIGNING_SECRET": TEST_STEP_SECRET,
    "STEP_PROVIDER": "simulated",
    "STEP_TIMEOUT_SECONDS": "3",
    "REDELIVERY_GRACE_SECONDS": "3",
}


class Api:
    """A small HTTP client for the running stack, plus read access to its database."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.session = requests.Session()
        self.engine = sa.create_engine(stack.database_url, poolclass=sa.NullPool)

    @property
    def base_url(self) -> str:
        return self.stack.base_url

    def headers(self, email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {make_token(email, exp=int(time.time()) + 3600)}"}

    def create(self, email: str, name: str = "E2E App", **simulate: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"project_name": name}
        if simulate:
            body["simulate"] = simulate
        response = self.session.post(f"{self.base_url}/api/v1/projects", json=body, headers=self.headers(email))
        assert response.status_code == 202, response.text
        task: dict[str, Any] = response.json()
        return task

    def task(self, email: str, task_id: str) -> dict[str, Any]:
        response = self.session.get(f"{self.base_url}/api/v1/tasks/{task_id}", headers=self.headers(email), timeout=10)
        assert response.status_code == 200, response.text
        task: dict[str, Any] = response.json()
        return task

    def cancel(self, email: str, task_id: str) -> requests.Response:
        return self.session.post(f"{self.base_url}/api/v1/tasks/{task_id}/cancel", headers=self.headers(email))

    def deliver(self, task_id: str, step: str, generation: int = 0) -> requests.Response:
        """A delivery of a step exactly as the queue makes it (its own connection: thread-safe)."""
        body = step_body(task_id, step, generation)
        return requests.post(
            f"{self.base_url}/internal/steps",
            data=body,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign_body(body, TEST_STEP_SECRET)},
            timeout=30,
        )

    def wait_for(
        self, email: str, task_id: str, until: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any]:
        """Poll the task until ``until`` holds; fail with its last state after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        task: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                task = self.task(email, task_id)
            except (requests.ConnectionError, AssertionError):
                pass  # the functions or the database are being restarted
            else:
                if until(task):
                    return task
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s; last state: {task}")

    def wait_terminal(self, email: str, task_id: str, timeout: float = 60) -> dict[str, Any]:
        return self.wait_for(email, task_id, lambda t: t["status"] in TERMINAL, timeout)

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]

    def progress(self, task_id: str) -> list[dict[str, Any]]:
        return self.query(
            "SELECT update_id, status, progress_percent FROM task_progress WHERE task_id = :t ORDER BY id", t=task_id
        )

    def usage(self, email: str) -> tuple[int, int, int]:
        rows = self.query(
            "SELECT g.ai_operations_count, g.projects_created, g.issues_generated FROM usage g"
            " JOIN users u ON u.id = g.user_id WHERE u.email = :e",
            e=email,
        )
        assert len(rows) <= 1
        return (
            (rows[0]["ai_operations_count"], rows[0]["projects_created"], rows[0]["issues_generated"])
            if rows
            else (0, 0, 0)
        )

    def close(self) -> None:
        self.session.close()
        self.engine.dispose()


@contextlib.contextmanager
def running_stack(env: dict[str, str], prefix: str) -> Iterator[LocalStack]:
    """A whole local stack with ``env`` on top of the process's, stopped and removed afterwards."""
    root = pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))  # short: the unix socket path
    local = LocalStack(
        data_dir=root / "pg",
        port=free_port(),
        tick_seconds=1,
        env_overrides=env,
        quiet=True,
        log_path=root / "functions.log",
    )
    try:
        local.start()
        yield local
    finally:
        local.stop()
        if os.environ.get("PLANTER_E2E_KEEP"):  # keep the functions' log (and data) to read after a failure
            print(f"e2e stack files kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with running_stack(E2E_ENV, "pe") as local:
        yield local


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[Api]:
    client = Api(stack)
    yield client
    client.close()
