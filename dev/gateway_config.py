"""The API Gateway configuration (OpenAPI 2.0 with ``x-google-backend``), generated from the
route table so that the production gateway, the local one (dev/gateway.py) and /openapi.json
cannot drift apart.

    python -m dev.gateway_config --project-number 123456789012 --region us-central1 \
        --output .deploy/gateway.yaml

Each public route is sent to the Cloud Run URL of the function that serves it, with the
request path appended (``APPEND_PATH_TO_ADDRESS``), so the function sees the same path as
locally. ``disable_auth`` keeps the caller's ``Authorization`` header: the browser-facing
functions are public and verify the user's JWT themselves; without it the gateway would
replace the header with its own identity token. Internal routes (Cloud Tasks, Cloud
Scheduler) are left out, so the gateway cannot reach them at all. Every path also gets an
``OPTIONS`` operation routed to its function, because a CORS preflight carries no token and
the functions answer it from the same route table. Anything else (an unknown path, a method a
path does not have) goes to one public function, which answers it as the local gateway does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from common.http import Route
from functions.routes import FUNCTIONS, ROUTES

# How long the gateway waits for a function; the slowest public call is a dashboard query.
BACKEND_DEADLINE_SECONDS = 30.0
# Requests no operation matches (unknown path, wrong method) go here instead of getting the
# gateway's own 404: every function's router knows the whole route table, so it answers them
# as the API contract and the local gateway do (problem+json 404, or 405 with Allow). The
# openapi function touches no database and serves no internal route.
FALLBACK_FUNCTION = "openapi"
_DESCRIPTIONS = {
    200: "Success",
    202: "Accepted",
    204: "No content",
    304: "Not modified",
    400: "Malformed request",
    401: "Missing or invalid token",
    404: "Unknown resource",
    409: "State conflict",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Validation failed",
    429: "Quota or rate limit reached",
    503: "Database unreachable; retry later",
}


def public_routes(routes: Iterable[Route] = ROUTES) -> list[Route]:
    """Routes the gateway exposes: everything but Cloud Tasks / Scheduler targets."""
    return [r for r in routes if r.auth != "internal"]


def service_name(function: str) -> str:
    """The Cloud Run service behind a 2nd gen function (Cloud Run names allow no underscores)."""
    return function.lower().replace("_", "-")


def run_url(function: str, project_number: str, region: str) -> str:
    """The function's deterministic Cloud Run URL, known before the first deploy."""
    return f"https://{service_name(function)}-{project_number}.{region}.run.app"


def backend_urls(project_number: str, region: str, functions: Iterable[str] = FUNCTIONS) -> dict[str, str]:
    return {f: run_url(f, project_number, region) for f in functions}


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "type": "string", "format": "uuid"}
        for name in re.findall(r"\{(\w+)\}", path)
    ]


def _backend(address: str) -> dict[str, Any]:
    return {
        "address": address,
        "path_translation": "APPEND_PATH_TO_ADDRESS",
        "disable_auth": True,
        "deadline": BACKEND_DEADLINE_SECONDS,
    }


def _operation(route: Route, address: str) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "x-google-backend": _backend(address),
        "responses": {
            str(status): {"description": _DESCRIPTIONS.get(status, "See the API documentation")}
            for status in (route.status, *route.errors)
        },
    }
    params = _path_parameters(route.path)
    if params:
        op["parameters"] = params
    return op


def _preflight_id(path: str) -> str:
    return "preflight_" + "_".join(re.findall(r"[a-z0-9]+", path.lower()))


def build_gateway_config(
    backends: Mapping[str, str], routes: Sequence[Route] = ROUTES, title: str = "planter-api"
) -> dict[str, Any]:
    """The Swagger 2.0 document API Gateway serves, for these routes and function URLs."""
    if FALLBACK_FUNCTION not in backends:
        raise KeyError(f"no backend URL for the fallback function {FALLBACK_FUNCTION!r}")
    paths: dict[str, dict[str, Any]] = {}
    for route in public_routes(routes):
        if route.function not in backends:
            raise KeyError(f"no backend URL for function {route.function!r}")
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, backends[route.function])
    for path, operations in paths.items():
        # Any function of the path answers its preflight: Router._preflight reads every route.
        first = next(r for r in public_routes(routes) if r.path == path)
        preflight: dict[str, Any] = {
            "operationId": _preflight_id(path),
            "summary": "CORS preflight, answered by the function without auth",
            "x-google-backend": _backend(backends[first.function]),
            "responses": {"204": {"description": "Preflight answered"}},
        }
        params = _path_parameters(path)
        if params:
            preflight["parameters"] = params
        operations["options"] = preflight
    return {
        "swagger": "2.0",
        "info": {
            "title": title,
            "description": "Planter API (generated from functions/routes.py by dev/gateway_config.py)",
            "version": "1.0.0",
        },
        "schemes": ["https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "x-google-allow": "all",
        "x-google-backend": _backend(backends[FALLBACK_FUNCTION]),
        "paths": paths,
    }


def render(document: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False, width=120)


def config_digest(text: str) -> str:
    """A short content hash: the API config id, so an unchanged config is not created again."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _parse_backends(pairs: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, url = pair.partition("=")
        if not sep or not url.startswith("https://"):
            raise SystemExit(f"--backend takes FUNCTION=https://..., got {pair!r}")
        if name not in FUNCTIONS:
            raise SystemExit(f"--backend names an unknown function {name!r}")
        found[name] = url.rstrip("/")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--project-number", help="the project NUMBER (Cloud Run URLs use it, not the id)")
    parser.add_argument("--region", help="the functions' region")
    parser.add_argument("--backend", action="append", default=[], metavar="FUNCTION=URL", help="override one URL")
    parser.add_argument("--title", default="planter-api")
    parser.add_argument("--output", type=pathlib.Path, help="write here (.yaml or .json); stdout otherwise")
    args = parser.parse_args(argv)
    backends: dict[str, str] = {}
    if args.project_number or args.region:
        if not (args.project_number and args.region):
            parser.error("--project-number and --region go together")
        if not str(args.project_number).isdigit():
            parser.error("--project-number must be the numeric project number")
        backends = backend_urls(args.project_number, args.region)
    backends.update(_parse_backends(args.backend))
    missing = sorted(({r.function for r in public_routes()} | {FALLBACK_FUNCTION}) - backends.keys())
    if missing:
        parser.error(f"no backend URL for {', '.join(missing)}: give --project-number/--region or --backend")
    document = build_gateway_config(backends, title=args.title)
    if args.output is None:
        sys.stdout.write(render(document))
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2) + "\n" if args.output.suffix == ".json" else render(document)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} ({len(document['paths'])} paths, digest {config_digest(text)})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
