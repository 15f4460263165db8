"""Users, their subscription tier and their usage per billing period."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import sqlalchemy as sa

from common.plans import FREE_TIER, TIER_LIMITS

_UPSERT_USER = sa.text(
    """
    INSERT INTO users (email, subject) VALUES (:email, :subject)
    ON CONFLICT (email) DO UPDATE SET subject = coalesce(users.subject, excluded.subject)
    RETURNING id
    """
)

_PLAN = sa.text(
    """
    SELECT coalesce(s.tier, CAST(:free_tier AS text)) AS tier,
           coalesce(s.monthly_operations_limit, CAST(:free_limit AS integer)) AS monthly_operations_limit,
           coalesce(u.ai_operations_count, 0) AS ai_operations_count,
           coalesce(u.projects_created, 0) AS projects_created,
           coalesce(u.issues_generated, 0) AS issues_generated
    FROM (SELECT 1) AS one
    LEFT JOIN subscriptions s ON s.user_id = :user_id
    LEFT JOIN usage u ON u.user_id = :user_id AND u.period_start = :period_start
    """
)

_ADD_USAGE = sa.text(
    """
    INSERT INTO usage (user_id, period_start, ai_operations_count, projects_created, issues_generated, prs_created)
    VALUES (:user_id, :period_start, :ai_operations, :projects_created, :issues_generated, :prs_created)
    ON CONFLICT (user_id, period_start) DO UPDATE SET
        ai_operations_count = usage.ai_operations_count + excluded.ai_operations_count,
        projects_created = usage.projects_created + excluded.projects_created,
        issues_generated = usage.issues_generated + excluded.issues_generated,
        prs_created = usage.prs_created + excluded.prs_created,
        updated_at = now()
    """
)

USAGE_COUNTERS = ("ai_operations", "projects_created", "issues_generated", "prs_created")


def billing_period_start(today: date) -> date:
    """Billing periods are calendar months in UTC."""
    return today.replace(day=1)


def upsert_user(conn: sa.Connection, email: str, subject: str | None) -> uuid.UUID:
    """The id of the user with this email, created on first sight (race-free)."""
    user_id: uuid.UUID = conn.execute(_UPSERT_USER, {"email": email, "subject": subject}).scalar_one()
    return user_id


def plan_and_usage(conn: sa.Connection, user_id: uuid.UUID, period_start: date) -> dict[str, Any]:
    """Tier, monthly AI-operation limit and this period's usage (free tier with no subscription)."""
    params = {"user_id": user_id, "period_start": period_start, "free_tier": FREE_TIER}
    return dict(conn.execute(_PLAN, {**params, "free_limit": TIER_LIMITS[FREE_TIER]}).mappings().one())


def usage_values(counts: dict[str, int]) -> list[int]:
    """What a provider reported, as the counters in USAGE_COUNTERS' order (never negative)."""
    return [max(0, int(counts.get(name, 0))) for name in USAGE_COUNTERS]


def add_usage(conn: sa.Connection, user_id: uuid.UUID, period_start: date, counts: dict[str, int]) -> None:
    """Add to this period's usage counters."""
    values = dict(zip(USAGE_COUNTERS, usage_values(counts), strict=True))
    if any(values.values()):
        conn.execute(_ADD_USAGE, {"user_id": user_id, "period_start": period_start, **values})


def set_subscription(conn: sa.Connection, user_id: uuid.UUID, tier: str) -> None:
    """Put a user on a tier (admin tooling and tests)."""
    conn.execute(
        sa.text(
            """
            INSERT INTO subscriptions (user_id, tier, monthly_operations_limit) VALUES (:u, :t, :l)
            ON CONFLICT (user_id) DO UPDATE SET tier = excluded.tier,
                monthly_operations_limit = excluded.monthly_operations_limit, updated_at = now()
            """
        ),
        {"u": user_id, "t": tier, "l": TIER_LIMITS[tier]},
    )
