"""GET /healthz and GET /openapi.json."""

from __future__ import annotations

import functools
from typing import Any

from common import db
from common.config import Settings, get_settings
from common.errors import DatabaseUnavailable
from common.http import Call, Reply
from common.openapi import build_document


def healthz(call: Call) -> Reply:
    try:
        db.ping()
    except DatabaseUnavailable:
        return Reply({"status": "degraded", "database": "unreachable"}, 503, {"Retry-After": "5"})
    body: dict[str, Any] = {"status": "ok", "database": "ok"}
    standins = _standins(get_settings())
    if standins:
        body["standins"] = standins
    return Reply(body, headers={"Cache-Control": "no-store"})


def _standins(settings: Settings) -> dict[str, str]:
    """The local stand-ins this process talks to (none in production)."""
    return {"gemini": settings.ai_base_url} if settings.ai_base_url else {}


@functools.cache
def _document() -> dict[str, Any]:
    from functions.routes import ROUTES

    return build_document(ROUTES)


def openapi(call: Call) -> Reply:
    return Reply(_document())
