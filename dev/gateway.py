"""The local stand-in for the API Gateway: one base URL, each path handed to its function.

It reads the same route table as the production gateway config, and calls the same entry
points that Cloud Functions would, so local requests take the production code path.
"""

from __future__ import annotations

import flask

import main
from functions.entry import Entry, answer_unrouted, edge
from functions.routes import ROUTES


def gateway(request: flask.Request) -> flask.Response:
    """functions-framework target serving every route under one base URL."""
    if request.method != "OPTIONS":
        for route in ROUTES:
            if route.method == request.method and route.pattern.match(request.path):
                entry: Entry = getattr(main, route.function)
                return entry(request)
    return edge.handle(request)


def create_app() -> flask.Flask:
    """A Flask app around the gateway, for tests and the benchmark."""
    app = flask.Flask("planter-gateway")

    @app.route("/", defaults={"path": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
    @app.route("/<path:path>", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
    def _all(path: str) -> flask.Response:
        return gateway(flask.request)

    app.register_error_handler(404, answer_unrouted)
    app.register_error_handler(405, answer_unrouted)
    return app
