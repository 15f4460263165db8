"""GET /api/v1/templates — the template repositories a project can be planted from."""

from __future__ import annotations

from common.http import Call, Reply
from common.services import templates


def list_templates(call: Call) -> Reply:
    return Reply(templates.list_templates(call.rt.settings))
