"""Accounts: a user's profile with plan and usage, names, and the admin listing."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import sqlalchemy as sa

from common.queries.tasks import iso_sql

# The user, their plan (free when there is no subscription row) and this period's usage, in one
# statement; reserved operations come from queries.tasks.in_flight_ai_operations.
_ACCOUNT_COLUMNS = f"""
    u.id, u.email, u.name, {iso_sql("u.created_at")} AS created_at,
    coalesce(s.tier, 'free') AS tier,
    coalesce(s.monthly_operations_limit, 100) AS monthly_operations_limit,
    coalesce(g.ai_operations_count, 0) AS ai_operations,
    coalesce(g.projects_created, 0) AS projects_created,
    coalesce(g.issues_generated, 0) AS issues_generated
"""
_ACCOUNT_FROM = """
    FROM users u
    LEFT JOIN subscriptions s ON s.user_id = u.id
    LEFT JOIN usage g ON g.user_id = u.id AND g.period_start = :period_start
"""

_ACCOUNT = sa.text(f"SELECT {_ACCOUNT_COLUMNS} {_ACCOUNT_FROM} WHERE u.id = :user_id")
_SET_NAME = sa.text("UPDATE users SET name = :name WHERE id = :user_id")


def account(conn: sa.Connection, user_id: uuid.UUID, period_start: date) -> dict[str, Any] | None:
    row = conn.execute(_ACCOUNT, {"user_id": user_id, "period_start": period_start}).mappings().first()
    return dict(row) if row else None


def set_name(conn: sa.Connection, user_id: uuid.UUID, name: str | None) -> None:
    conn.execute(_SET_NAME, {"user_id": user_id, "name": name})


def list_accounts(
    conn: sa.Connection, period_start: date, *, email_prefix: str | None, after_email: str | None, limit: int
) -> list[dict[str, Any]]:
    """Users in email order after ``after_email``, optionally those whose email starts with a prefix."""
    clauses = ["TRUE"]
    params: dict[str, Any] = {"period_start": period_start, "limit": limit}
    if email_prefix:
        # starts_with, not LIKE: a % or _ in the filter is a character, not a wildcard.
        clauses.append("starts_with(u.email, :prefix)")
        params["prefix"] = email_prefix
    if after_email:
        clauses.append("u.email > :after")
        params["after"] = after_email
    sql = f"SELECT {_ACCOUNT_COLUMNS} {_ACCOUNT_FROM} WHERE {' AND '.join(clauses)} ORDER BY u.email LIMIT :limit"
    return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]
