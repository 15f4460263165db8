"""GET/PATCH /api/v1/me — the caller's profile, plan and usage."""

from __future__ import annotations

from common.http import Call, Reply
from common.models_account import UpdateMe
from common.services import accounts


def get_me(call: Call) -> Reply:
    return Reply(
        accounts.get_me(call.rt, call.user, call.rt.clock.now().date()), headers={"Cache-Control": "private, no-cache"}
    )


def update_me(call: Call) -> Reply:
    body = call.json(UpdateMe)
    return Reply(accounts.update_me(call.rt, call.user, body.name, call.rt.clock.now().date()))
