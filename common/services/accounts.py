"""The caller's account (profile, plan, usage) and the admin operations on subscriptions."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import date
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from common.errors import BadRequest, NotFound
from common.models_account import (
    AccountUsage,
    AdminUser,
    AdminUserList,
    AdminUsersQuery,
    Me,
    SetSubscription,
    Subscription,
)
from common.queries import accounts as q
from common.queries import tasks as task_q
from common.queries import users as user_q
from common.services.users import User

if TYPE_CHECKING:
    from common.runtime import Runtime

# List prices per month (MISSION.md: pro is 49 USD; enterprise is agreed per customer).
TIER_PRICES_USD: dict[str, float | None] = {"free": 0.0, "pro": 49.0, "enterprise": None}


def _period(today: date) -> tuple[date, date]:
    start = user_q.billing_period_start(today)
    end = date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start, end


def _usage(row: dict[str, Any], reserved: int) -> AccountUsage:
    return AccountUsage(
        ai_operations=row["ai_operations"],
        reserved_ai_operations=reserved,
        projects_created=row["projects_created"],
        issues_generated=row["issues_generated"],
    )


def _read_me(conn: sa.Connection, user_id: uuid.UUID, today: date) -> Me:
    start, end = _period(today)
    row = q.account(conn, user_id, start)
    if row is None:
        raise NotFound("no such user")
    reserved = task_q.in_flight_ai_operations(conn, user_id)
    return Me(
        user_id=str(row["id"]),
        email=row["email"],
        name=row["name"],
        created_at=row["created_at"],
        subscription=Subscription(
            tier=row["tier"],
            monthly_operations_limit=row["monthly_operations_limit"],
            price_usd_per_month=TIER_PRICES_USD[row["tier"]],
            period_start=start.isoformat(),
            period_end=end.isoformat(),
        ),
        usage=_usage(row, reserved),
    )


def get_me(rt: Runtime, user: User, today: date) -> Me:
    return rt.db.transaction(lambda conn: _read_me(conn, user.id, today))


def update_me(rt: Runtime, user: User, name: str | None, today: date) -> Me:
    def work(conn: sa.Connection) -> Me:
        q.set_name(conn, user.id, name)
        return _read_me(conn, user.id, today)

    return rt.db.transaction(work)


def _admin_user(row: dict[str, Any]) -> AdminUser:
    return AdminUser(
        user_id=str(row["id"]),
        email=row["email"],
        name=row["name"],
        created_at=row["created_at"],
        tier=row["tier"],
        monthly_operations_limit=row["monthly_operations_limit"],
        usage=_usage(row, row.get("reserved", 0)),
    )


def set_subscription(rt: Runtime, body: SetSubscription, today: date) -> AdminUser:
    """Put a user (created when new) on a tier. The quota check reads the subscription row on
    every creation, so the new limit applies to the very next one."""
    email = body.email.strip().lower()

    def work(conn: sa.Connection) -> AdminUser:
        user_id = user_q.upsert_user(conn, email, None)
        user_q.set_subscription(conn, user_id, body.tier)
        row = q.account(conn, user_id, _period(today)[0])
        assert row is not None  # just upserted in this transaction
        return _admin_user({**row, "reserved": task_q.in_flight_ai_operations(conn, user_id)})

    return rt.db.transaction(work)


def _encode_cursor(email: str) -> str:
    return base64.urlsafe_b64encode(email.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        email = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        email = ""
    if "@" not in email:
        raise BadRequest("the cursor is not valid; start again without it")
    return email


def list_users(rt: Runtime, query: AdminUsersQuery, today: date) -> AdminUserList:
    after = _decode_cursor(query.cursor) if query.cursor else None
    prefix = query.email.strip().lower() if query.email else None

    def work(conn: sa.Connection) -> list[dict[str, Any]]:
        found = q.list_accounts(conn, _period(today)[0], email_prefix=prefix, after_email=after, limit=query.limit + 1)
        # One small query per user on the page: an operator's listing, not a hot path.
        return [{**r, "reserved": task_q.in_flight_ai_operations(conn, r["id"])} for r in found[: query.limit]] + (
            found[query.limit :]
        )

    rows = rt.db.transaction(work)
    page, more = rows[: query.limit], len(rows) > query.limit
    return AdminUserList(
        users=[_admin_user(r) for r in page], next_cursor=_encode_cursor(page[-1]["email"]) if more else None
    )
