"""Builds the HTTP entry point of one deployed function from the route table."""

from __future__ import annotations

from collections.abc import Callable

import flask

from common.http import Router
from common.services.users import resolve_user
from functions.routes import ROUTES, routes_of

Entry = Callable[[flask.Request], flask.Response]

# Answers what no function serves (unknown paths, wrong methods, preflights) as problem+json.
edge = Router((), resolve_user, ROUTES)


def entrypoint(function: str) -> Entry:
    """The Cloud Functions target for ``function``: serves only that function's routes."""
    router = Router(routes_of(function), resolve_user, ROUTES)

    def handle(request: flask.Request) -> flask.Response:
        return router.handle(request)

    handle.__name__ = function
    return handle


def answer_unrouted(error: Exception) -> flask.Response:
    """Flask's own 404/405 (a path its URL rules cannot match, such as one with an encoded newline,
    or a method functions-framework does not route) answered like any unknown route: problem+json,
    not Flask's HTML page."""
    return edge.handle(flask.request)
