from __future__ import annotations

import dataclasses
import json

import pytest

from common import auth
from common.config import Settings, load_settings
from common.errors import Unauthorized
from common.queue import DISPATCH_DEADLINE_SECONDS, CloudTasksEnqueuer, task_name
from common.runtime import SystemClock

TASK_ID = "0b6c3f5e-8a1d-4c1e-9d7e-2f0a1b2c3d4e"


@pytest.fixture
def settings() -> Settings:
    environ = {
        "PLANTER_ENV": "test",
        "STEP_SIGNING_SECRET": "s" * 40,
        "STEP_URL": "https://steps.example.test/internal/steps",
    }
    return load_settings(environ)


def test_task_names_are_deterministic_per_generation_and_valid_for_cloud_tasks() -> None:
    first = task_name(TASK_ID, "creating_gcp_project", 0)
    assert first == task_name(TASK_ID, "creating_gcp_project", 0)
    assert first != task_name(TASK_ID, "creating_gcp_project", 1)
    assert all(c.isalnum() or c in "-_" for c in first)
    assert len(first) <= 500


def test_the_task_carries_a_body_signed_the_way_the_step_handler_checks(settings: Settings) -> None:
    task = CloudTasksEnqueuer(settings).build_task(TASK_ID, "deploying", 2)
    request = task["http_request"]
    assert json.loads(request["body"]) == {"task_id": TASK_ID, "step": "deploying", "generation": 2}
    assert request["url"] == "https://steps.example.test/internal/steps"
    signature = request["headers"][auth.SIGNATURE_HEADER]
    verifier = auth.TokenVerifier(settings, SystemClock())
    verifier.step_caller(signature, None, request["body"])
    with pytest.raises(Unauthorized):
        verifier.step_caller(signature, None, request["body"] + b" ")
    assert task["name"].endswith(f"/tasks/{task_name(TASK_ID, 'deploying', 2)}")
    assert task["dispatch_deadline"] == {"seconds": DISPATCH_DEADLINE_SECONDS}
    assert "oidc_token" not in request


def test_production_tasks_carry_an_oidc_token_for_the_invoker(settings: Settings) -> None:
    configured = dataclasses.replace(
        settings,
        oidc_service_account="tasks-invoker@proj.iam.gserviceaccount.com",
        oidc_audience="https://pipeline-step.example.test",
    )
    request = CloudTasksEnqueuer(configured).build_task(TASK_ID, "deploying", 0)["http_request"]
    assert request["oidc_token"] == {
        "service_account_email": "tasks-invoker@proj.iam.gserviceaccount.com",
        "audience": "https://pipeline-step.example.test",
    }
