"""One deployed function's first request, in a fresh interpreter: what it imports, and when.

`make bench` runs ``python -X importtime -m dev.bench_probe SPEC`` (SPEC: JSON with the function,
method, path, headers and body) in a clean process per function. It imports ``main`` as Cloud
Functions does, answers one request through the function's entry point, and prints a JSON line:
the time to import, the time of the first request, the status, and which heavy modules were
loaded by the import and which only by the first request. The import trace goes to stderr.
"""

from __future__ import annotations

import json
import sys
import time

HEAVY = (
    "pydantic",
    "sqlalchemy",
    "pg8000",
    "jwt",
    "cryptography",
    "google.cloud.tasks_v2",
    "google.cloud.sql.connector",
    "google.auth",
    "grpc",
    "alembic",
    "common.openapi",
)


def _loaded() -> set[str]:
    return {name for name in HEAVY if name in sys.modules}


def main() -> None:
    spec = json.loads(sys.argv[1])
    started = time.perf_counter()
    import flask

    import main as entry_points

    imported = time.perf_counter()
    at_import = _loaded()
    app = flask.Flask("probe")
    body = spec.get("body", "").encode()
    with app.test_request_context(spec["path"], method=spec["method"], headers=spec.get("headers", {}), data=body):
        response = getattr(entry_points, spec["function"])(flask.request)
    answered = time.perf_counter()
    print(
        json.dumps(
            {
                "function": spec["function"],
                "status": response.status_code,
                "import_s": imported - started,
                "first_request_s": answered - imported,
                "heavy_at_import": sorted(at_import),
                "heavy_after_first_request": sorted(_loaded() - at_import),
                "modules": len(sys.modules),
            }
        )
    )


if __name__ == "__main__":
    main()
