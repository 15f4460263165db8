"""The OpenAPI 3.1 document, generated from the route table and the pydantic models."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from common.http import Route
from common.models import Problem

_REASONS = {
    304: "Not modified (If-None-Match matched the ETag)",
    400: "Malformed JSON, query or cursor",
    401: "Missing, invalid or expired token",
    404: "Unknown resource, or one that belongs to another user",
    405: "Method not allowed",
    409: "State conflict (the task is terminal)",
    413: "Body over the size limit",
    415: "Body is not JSON",
    422: "Field validation failed, or an Idempotency-Key reused with another body",
    429: "Monthly AI-operation quota reached",
    503: "Database or identity provider unreachable, or retry later (Retry-After)",
}
# Routes of the dashboard page (functions/web.py): served for browsers, not API operations.
WEB_FUNCTION = "web"
WEB_TAG = "web page"
# The page's media types by suffix, fixed here (mimetypes answers differently across platforms).
WEB_MEDIA_TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


def web_media_type(path: str) -> str:
    """The media type of a page route: its file's suffix, or HTML for the page itself ("/")."""
    return WEB_MEDIA_TYPES.get(pathlib.PurePosixPath(path).suffix, "text/html")


_HEADERS = {
    "Location": {"description": "Where the created task is read", "schema": {"type": "string"}},
    "ETag": {"description": "The task's version, for If-None-Match", "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before trying again", "schema": {"type": "integer"}},
}
_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "user": [{"bearerAuth": []}],
    "callback": [{"callbackToken": []}],
    "internal": [{"stepSignature": []}],
    "none": [],
    "stream": [{"bearerAuth": []}, {"streamToken": []}],
}


def _models(routes: Sequence[Route]) -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {"Problem": Problem}
    for r in routes:
        for model in (r.request_model, r.response_model):
            if model is not None:
                found[model.__name__] = model
    return list(found.values())


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "security": _SECURITY[route.auth],
        "x-planter-function": route.function,
    }
    params = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
        for p in re.findall(r"\{(\w+)\}", route.path)
    ]
    if route.query_model is not None:
        params += _query_parameters(route.query_model)
    if route.path == "/api/v1/projects":
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 255},
            }
        )
    if (route.path.endswith("{task_id}") and route.method == "GET") or route.conditional:
        params.append({"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}})
    if params:
        op["parameters"] = params
    if route.request_model is not None:
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{route.request_model.__name__}"}}
            },
        }
    success: dict[str, Any] = {"description": "Success"}
    if route.response_model is not None:
        success["content"] = {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{route.response_model.__name__}"}}
        }
    elif route.auth == "stream":
        success["content"] = {"text/event-stream": {"schema": {"type": "string"}}}
        success["description"] = "Server-sent events (docs/API.md, Live updates)"
    elif route.function == "openapi":
        success["content"] = {"application/json": {"schema": {"type": "object"}}}
    elif route.function == WEB_FUNCTION:
        # The dashboard page and its assets: listed (the gateway routes them) but marked as what they are.
        success["content"] = {web_media_type(route.path): {"schema": {"type": "string"}}}
        op["tags"] = [WEB_TAG]
        op["x-planter-web-page"] = True
    else:
        success["content"] = {"application/json": {"schema": {"type": "object"}}}
    if route.status == 202:
        success["headers"] = {"Location": _HEADERS["Location"]}
    etagged = (route.method == "GET" and route.path.endswith("{task_id}")) or route.conditional
    if etagged:
        success["headers"] = {"ETag": _HEADERS["ETag"]}
    responses: dict[str, Any] = {str(route.status): success}
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    errors = (*route.errors, 304) if route.conditional and 304 not in route.errors else route.errors
    for status in errors:
        response: dict[str, Any] = {"description": _REASONS[status]}
        if status != 304:
            response["content"] = problem
        if status == 304 and etagged:
            response["headers"] = {"ETag": _HEADERS["ETag"]}
        if status in (429, 503):
            response["headers"] = {"Retry-After": _HEADERS["Retry-After"]}
        responses[str(status)] = response
    op["responses"] = responses
    return op


def build_document(routes: Sequence[Route]) -> dict[str, Any]:
    """An OpenAPI 3.1 document describing exactly these routes."""
    _, defs = models_json_schema(
        [
            (
                m,
                "validation"
                if m.__name__ in {r.request_model.__name__ for r in routes if r.request_model}
                else "serialization",
            )
            for m in _models(routes)
        ],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Planter API", "version": "1.0.0", "description": "Plants software projects for its users."},
        "servers": [{"url": "/"}],
        "tags": [
            {
                "name": WEB_TAG,
                "description": "The dashboard page and its static assets, for browsers: not API operations.",
            }
        ],
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "callbackToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "HS256 token bound to one task (aud planter-progress, sub = task id).",
                },
                "streamToken": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "access_token",
                    "description": "A token from POST /api/v1/stream-tokens (at most 5 minutes; event routes only).",
                },
                "stepSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Planter-Signature",
                    "description": "sha256=<hex HMAC-SHA256(STEP_SIGNING_SECRET, raw body)>",
                },
            },
        },
    }
