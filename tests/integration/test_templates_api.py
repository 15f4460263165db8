"""GET /api/v1/templates and the GitHub choices of POST /api/v1/projects (template, github_owner, private)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from common.config import Settings
from tests.conftest import suite_settings


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Every test of this module: two templates configured, and the live provider (no simulate)."""
    return suite_settings(
        DATABASE_URL=database_url,
        GITHUB_TEMPLATES="acme/service=A web service,acme/site",
        PLANTER_GITHUB_ORG="planter-projects",
        STEP_PROVIDER="live",
    )


def _payload(engine: sa.Engine, task_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        payload: dict[str, Any] = conn.execute(
            sa.text("SELECT payload FROM tasks WHERE id = :t"), {"t": task_id}
        ).scalar_one()
    return payload


def test_templates_lists_the_configured_ones_first_is_default(client: Any, auth_header: Any) -> None:
    response = client.get("/api/v1/templates", headers=auth_header())
    assert response.status_code == 200
    assert response.get_json() == {
        "templates": [
            {"name": "acme/service", "description": "A web service", "default": True},
            {"name": "acme/site", "description": "Template acme/site", "default": False},
        ]
    }
    assert client.get("/api/v1/templates").status_code == 401


def test_a_project_records_its_github_choices(client: Any, auth_header: Any, engine: sa.Engine) -> None:
    saas = client.post("/api/v1/projects", json={"project_name": "One"}, headers=auth_header()).get_json()
    assert _payload(engine, saas["task_id"]) == {
        "template": "acme/service",
        "github_owner": "planter-projects",
        "private": True,
    }
    body = {"project_name": "Two", "mode": "user", "github_owner": "my-org", "template": "acme/site", "private": False}
    user = client.post("/api/v1/projects", json=body, headers=auth_header())
    assert user.status_code == 202
    assert _payload(engine, user.get_json()["task_id"]) == {
        "template": "acme/site",
        "github_owner": "my-org",
        "private": False,
    }


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"template": "acme/unknown"}, "template"),
        ({"mode": "user"}, "github_owner"),
        ({"github_owner": "someone-else"}, "github_owner"),
        ({"mode": "user", "github_owner": "-bad-"}, "github_owner"),
        ({"private": "maybe"}, "private"),
    ],
)
def test_choices_it_cannot_honour_are_422_naming_the_field(
    client: Any, auth_header: Any, engine: sa.Engine, extra: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/projects", json={"project_name": "Refused", **extra}, headers=auth_header())
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert field in str(response.get_json())
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM tasks")).scalar_one() == 0
