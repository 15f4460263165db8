"""Helpers for tests of the live provider against the local stand-ins (GitHub and Gemini)."""

from __future__ import annotations

import pathlib
import subprocess
import uuid
from typing import Any

import httpx
import sqlalchemy as sa

from common.ai import AISettings, GeminiClient
from common.github.access import TokenAccess
from common.pipeline import STEP_NAMES
from common.providers.live import LiveConfig, LiveProvider
from common.runtime import Runtime
from common.services import steps
from dev.standins.github.templates import PLANTER_ORG, TEMPLATES

TEMPLATE = next(iter(TEMPLATES))
INSTALL_URL = "https://github.com/apps/planter-test/installations/new"


def live_provider(github_url: str, gemini_url: str) -> LiveProvider:
    ai = GeminiClient(
        AISettings(model="gemini-2.5-flash", project="planter-test", location="us-central1", base_url=gemini_url)
    )
    config = LiveConfig(planter_org=PLANTER_ORG, templates=tuple(TEMPLATES), app_install_url=INSTALL_URL)
    return LiveProvider(config=config, github=TokenAccess(github_url, "test-token"), ai=lambda: ai)


def rest(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": "Bearer test-token"})


def create(client: Any, headers: dict[str, str], name: str, **extra: Any) -> dict[str, Any]:
    body = {
        "project_name": name,
        "project_description": "A web app to store family recipes and plan weekly meals",
        **extra,
    }
    response = client.post("/api/v1/projects", json=body, headers=headers)
    assert response.status_code == 202, response.get_json()
    task: dict[str, Any] = response.get_json()
    return task


def run_pipeline(
    runtime: Runtime, task_id: str, provider: LiveProvider, names: tuple[str, ...] = STEP_NAMES
) -> list[steps.StepResult]:
    """Deliver each step once, in order, through the steps service (as the queue would)."""
    return [steps.run_step(runtime, uuid.UUID(task_id), name, provider) for name in names]


def step_row(engine: sa.Engine, task_id: str, step: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = (
            conn.execute(
                sa.text(
                    "SELECT status, attempts, error, result, extract(epoch FROM due_at - now()) AS due_in"
                    " FROM task_steps WHERE task_id = :t AND name = :s"
                ),
                {"t": task_id, "s": step},
            )
            .mappings()
            .one()
        )
    return dict(row)


def make_due(engine: sa.Engine, task_id: str, step: str) -> None:
    """Time passing for a step in backoff (the test does not sleep 30 s)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE task_steps SET due_at = now() WHERE task_id = :t AND name = :s"), {"t": task_id, "s": step}
        )


def clone(url: str, into: pathlib.Path) -> list[str]:
    """`git clone` the URL; the one-line log, newest first."""
    subprocess.run(["git", "clone", "--quiet", url, str(into)], check=True, capture_output=True)
    log = subprocess.run(["git", "log", "--format=%s"], cwd=into, check=True, capture_output=True, text=True)
    return log.stdout.splitlines()
