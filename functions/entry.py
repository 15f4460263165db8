"""Builds the HTTP entry point of one deployed function from the route table, around the
instance's one runtime."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import flask

from common.config import load_settings
from common.http import Router
from common.lazy import Lazy
from common.runtime import Runtime, build_runtime
from common.services.users import resolve_user
from functions.routes import ROUTES, routes_of

Entry = Callable[[flask.Request], flask.Response]
RuntimeSource = Callable[[], Runtime]


def instance_runtime(environ: Mapping[str, str] | None = None) -> Lazy[Runtime]:
    """The runtime of this instance, read from the environment and built on the first request:
    importing ``main`` (the cold start) reads nothing, connects nothing and imports no client."""
    return Lazy(lambda: build_runtime(load_settings(environ)))


def entrypoint(function: str, runtime: RuntimeSource) -> Entry:
    """The Cloud Functions target for ``function``: serves only that function's routes."""
    router = Router(routes_of(function), runtime, resolve_user, ROUTES)

    def handle(request: flask.Request) -> flask.Response:
        return router.handle(request)

    handle.__name__ = function
    return handle


def edge(runtime: RuntimeSource) -> Router:
    """Answers what no function serves (unknown paths, wrong methods, preflights) as problem+json."""
    return Router((), runtime, resolve_user, ROUTES)


def unrouted(runtime: RuntimeSource) -> Callable[[Exception], flask.Response]:
    """Flask's own 404/405 (a path its URL rules cannot match, such as one with an encoded newline,
    or a method functions-framework does not route) answered like any unknown route: problem+json,
    not Flask's HTML page."""
    router = edge(runtime)

    def answer(error: Exception) -> flask.Response:
        return router.handle(flask.request)

    return answer
