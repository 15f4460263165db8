"""Builds the HTTP entry point of one deployed function from the route table."""

from __future__ import annotations

from collections.abc import Callable

import flask

from common.http import Router
from common.services.users import resolve_user
from functions.routes import ROUTES, routes_of

Entry = Callable[[flask.Request], flask.Response]


def entrypoint(function: str) -> Entry:
    """The Cloud Functions target for ``function``: serves only that function's routes."""
    router = Router(routes_of(function), resolve_user, ROUTES)

    def handle(request: flask.Request) -> flask.Response:
        return router.handle(request)

    handle.__name__ = function
    return handle
