"""GET /healthz and GET /openapi.json."""

from __future__ import annotations

import functools
from typing import Any

from common.errors import DatabaseUnavailable
from common.http import Call, Reply
from common.openapi import build_document


def healthz(call: Call) -> Reply:
    try:
        call.rt.db.ping()
    except DatabaseUnavailable:
        return Reply({"status": "degraded", "database": "unreachable"}, 503, {"Retry-After": "5"})
    body: dict[str, Any] = {"status": "ok", "database": "ok"}
    standins = call.rt.settings.standins
    if standins:  # local stacks only: which outside services are stand-ins, and where
        body["standins"] = dict(entry.partition("=")[::2] for entry in standins)
    return Reply(body, headers={"Cache-Control": "no-store"})


@functools.cache
def _document() -> dict[str, Any]:
    from functions.routes import ROUTES

    return build_document(ROUTES)


def openapi(call: Call) -> Reply:
    return Reply(_document())
