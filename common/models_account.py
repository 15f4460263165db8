"""Bodies of the account routes (GET/PATCH /api/v1/me) and the internal admin routes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from common.models import Model, StrictModel

Tier = Literal["free", "pro", "enterprise"]


class Subscription(Model):
    tier: Tier
    monthly_operations_limit: int  # -1 = unlimited
    price_usd_per_month: float | None  # None: priced by agreement (enterprise)
    period_start: str  # this billing period (a calendar month in UTC), dates as YYYY-MM-DD
    period_end: str  # the first day after it


class AccountUsage(Model):
    ai_operations: int
    reserved_ai_operations: int  # expected by the user's pipelines still in flight (the quota counts them)
    projects_created: int
    issues_generated: int


class Me(Model):
    user_id: str
    email: str
    name: str | None
    created_at: str
    subscription: Subscription
    usage: AccountUsage


class UpdateMe(StrictModel):
    name: str | None = Field(min_length=1, max_length=200)


class SetSubscription(StrictModel):
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    tier: Tier


class AdminUsersQuery(StrictModel):
    email: str | None = Field(default=None, min_length=1, max_length=320)
    cursor: str | None = Field(default=None, max_length=500)
    limit: int = Field(default=50, ge=1, le=200)


class AdminUser(Model):
    user_id: str
    email: str
    name: str | None
    created_at: str
    tier: Tier
    monthly_operations_limit: int
    usage: AccountUsage


class AdminUserList(Model):
    users: list[AdminUser]
    next_cursor: str | None
