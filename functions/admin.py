"""Internal admin routes (IAM-only in production, HMAC-signed locally): tiers and the user list."""

from __future__ import annotations

from common.http import Call, Reply
from common.models_account import AdminUsersQuery, SetSubscription
from common.services import accounts


def set_subscription(call: Call) -> Reply:
    return Reply(accounts.set_subscription(call.rt, call.json(SetSubscription), call.rt.clock.now().date()))


def list_users(call: Call) -> Reply:
    return Reply(accounts.list_users(call.rt, call.query(AdminUsersQuery), call.rt.clock.now().date()))
