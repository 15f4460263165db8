"""Accounts (API.md "Accounts"): the caller's profile, plan and usage, and the internal admin
routes signed like the scheduler, against a real migrated PostgreSQL per test."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from common.auth import SIGNATURE_HEADER, sign_body
from common.pipeline import STEPS
from tests.conftest import TEST_STEP_SECRET, make_token
from tests.contract import assert_problem

ME = "/api/v1/me"
ALICE = "alice@example.test"


def bearer(email: str = ALICE) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(email)}"}


def signed_post(client: Any, path: str, body: dict[str, Any], secret: str = TEST_STEP_SECRET) -> Any:
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign_body(raw, secret)}
    return client.post(path, data=raw, headers=headers)


def signed_get(client: Any, path_and_query: str, signed: str | None = None) -> Any:
    headers = {SIGNATURE_HEADER: sign_body((signed or path_and_query).encode(), TEST_STEP_SECRET)}
    return client.get(path_and_query, headers=headers)


def test_me_shows_a_new_user_on_the_free_plan_with_this_months_period(client: Any) -> None:
    response = client.get(ME, headers=bearer())
    assert response.status_code == 200
    me = response.get_json()
    today = datetime.now(UTC).date()
    assert me["email"] == ALICE and me["name"] is None and me["created_at"].endswith("Z")
    assert me["subscription"] == {
        "tier": "free",
        "monthly_operations_limit": 100,
        "price_usd_per_month": 0.0,
        "period_start": today.replace(day=1).isoformat(),
        "period_end": _next_month(today).isoformat(),
    }
    assert me["usage"] == {
        "ai_operations": 0,
        "reserved_ai_operations": 0,
        "projects_created": 0,
        "issues_generated": 0,
    }


def _next_month(today: Any) -> Any:
    return today.replace(year=today.year + today.month // 12, month=today.month % 12 + 1, day=1)


def test_me_counts_what_pipelines_in_flight_reserve(client: Any) -> None:
    created = client.post("/api/v1/projects", json={"project_name": "Reserving"}, headers=bearer())
    assert created.status_code == 202
    me = client.get(ME, headers=bearer()).get_json()
    assert me["usage"]["reserved_ai_operations"] == sum(s.ai_operations for s in STEPS)


def test_patch_me_sets_and_clears_the_name_and_validates_it(client: Any) -> None:
    named = client.patch(ME, json={"name": "Alice Liddell"}, headers=bearer())
    assert named.status_code == 200 and named.get_json()["name"] == "Alice Liddell"
    assert client.get(ME, headers=bearer()).get_json()["name"] == "Alice Liddell"
    for body, field in (({"name": ""}, "name"), ({"name": "x" * 201}, "name"), ({"nick": "a"}, "nick"), ({}, "name")):
        refused = client.patch(ME, json=body, headers=bearer())
        assert_problem(refused, 422)
        assert field in refused.get_json()["errors"], body
    cleared = client.patch(ME, json={"name": None}, headers=bearer())
    assert cleared.status_code == 200 and cleared.get_json()["name"] is None
    assert_problem(client.get(ME), 401)


def test_admin_sets_a_tier_creating_the_user_and_the_limit_applies_at_once(client: Any) -> None:
    response = signed_post(client, "/internal/admin/subscriptions", {"email": "New.User@Example.test", "tier": "pro"})
    assert response.status_code == 200, response.get_json()
    user = response.get_json()
    assert user["email"] == "new.user@example.test" and user["tier"] == "pro"
    assert user["monthly_operations_limit"] == 1000
    me = client.get(ME, headers=bearer("new.user@example.test")).get_json()
    assert me["user_id"] == user["user_id"] and me["subscription"]["price_usd_per_month"] == 49.0
    again = signed_post(
        client, "/internal/admin/subscriptions", {"email": "new.user@example.test", "tier": "enterprise"}
    )
    assert again.get_json()["monthly_operations_limit"] == -1
    assert client.get(ME, headers=bearer("new.user@example.test")).get_json()["subscription"]["tier"] == "enterprise"
    assert_problem(signed_post(client, "/internal/admin/subscriptions", {"email": "a@b.c", "tier": "gold"}), 422)


def test_admin_routes_refuse_what_is_not_signed_with_the_step_secret(client: Any) -> None:
    body = {"email": "mallory@example.test", "tier": "enterprise"}
    assert_problem(client.post("/internal/admin/subscriptions", json=body), 401)
    assert_problem(signed_post(client, "/internal/admin/subscriptions", body, secret="another-secret-" * 3), 401)
    # A user's token is not an admin's.
    assert_problem(client.post("/internal/admin/subscriptions", json=body, headers=bearer()), 401)
    assert_problem(client.get("/internal/admin/users"), 401)
    # A GET is signed over its path and query: a signature for one query does not open another.
    assert_problem(signed_get(client, "/internal/admin/users?email=a", signed="/internal/admin/users?email=b"), 401)
    assert client.get(ME, headers=bearer("mallory@example.test")).get_json()["subscription"]["tier"] == "free"


def test_admin_lists_users_by_email_with_usage_page_by_page(client: Any) -> None:
    for i in range(5):
        assert (
            signed_post(
                client, "/internal/admin/subscriptions", {"email": f"u{i}@list.test", "tier": "free"}
            ).status_code
            == 200
        )
    client.get(ME, headers=bearer("other@elsewhere.test"))
    first = signed_get(client, "/internal/admin/users?email=u&limit=3")
    assert first.status_code == 200, first.get_json()
    page = first.get_json()
    assert [u["email"] for u in page["users"]] == ["u0@list.test", "u1@list.test", "u2@list.test"]
    assert page["users"][0]["usage"]["ai_operations"] == 0 and page["next_cursor"]
    second = signed_get(client, f"/internal/admin/users?email=u&limit=3&cursor={page['next_cursor']}")
    assert [u["email"] for u in second.get_json()["users"]] == ["u3@list.test", "u4@list.test"]
    assert second.get_json()["next_cursor"] is None
    assert_problem(signed_get(client, "/internal/admin/users?cursor=%25%25"), 400)
