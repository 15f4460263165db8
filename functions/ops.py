"""GET /healthz and GET /openapi.json."""

from __future__ import annotations

import functools
from typing import Any

from common import db
from common.errors import DatabaseUnavailable
from common.http import Call, Reply
from common.openapi import build_document


def healthz(call: Call) -> Reply:
    try:
        db.ping()
    except DatabaseUnavailable:
        return Reply({"status": "degraded", "database": "unreachable"}, 503, {"Retry-After": "5"})
    return Reply({"status": "ok", "database": "ok"}, headers={"Cache-Control": "no-store"})


@functools.cache
def _document() -> dict[str, Any]:
    from functions.routes import ROUTES

    return build_document(ROUTES)


def openapi(call: Call) -> Reply:
    return Reply(_document())
