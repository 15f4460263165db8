"""The local stand-in for the API Gateway: one base URL, each path handed to its function.

It reads the same route table as the production gateway config, and calls the same entry
points that Cloud Functions would (functions.entry), so local requests take the production code
path. All functions share one runtime here: the one the stack's environment describes, or the
one a test or benchmark passes to ``create_app``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import flask
import functions_framework

from common.http import RouteTable
from common.runtime import Runtime
from functions.entry import Entry, edge, entrypoint, instance_runtime, unrouted
from functions.routes import FUNCTIONS, ROUTES


def serve(runtime: Callable[[], Runtime], entries: Mapping[str, Entry] | None = None) -> Entry:
    """The gateway: each request handed to the entry point of the function that serves its route."""
    entries = entries or {name: entrypoint(name, runtime) for name in FUNCTIONS}
    router = edge(runtime)
    table = RouteTable(ROUTES)

    def gateway(request: flask.Request) -> flask.Response:
        method = request.method
        found = table.find(method, request.path) if method != "OPTIONS" else None
        if found is not None:
            return entries[found[0].function](request)
        return router.handle(request)

    return gateway


def create_app(runtime: Runtime | Callable[[], Runtime], entries: Mapping[str, Entry] | None = None) -> flask.Flask:
    """A Flask app around the gateway, for tests and the benchmark: ``runtime`` serves every
    function (``entries`` replaces the functions themselves, to test the routing alone)."""
    source = runtime if callable(runtime) else (lambda: runtime)
    handle = serve(source, entries)
    app = flask.Flask("planter-gateway")

    @app.route("/", defaults={"path": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
    @app.route("/<path:path>", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
    def _all(path: str) -> flask.Response:
        return handle(flask.request)

    app.register_error_handler(404, unrouted(source))
    app.register_error_handler(405, unrouted(source))
    return app


# The functions-framework target of the local stack (dev/stack.py): one runtime from its environment,
# and problem+json for what its catch-all URL rule cannot match (as main.py does per function).
_stack_runtime = instance_runtime().get
gateway = serve(_stack_runtime)
functions_framework.errorhandler(404)(unrouted(_stack_runtime))
functions_framework.errorhandler(405)(unrouted(_stack_runtime))
