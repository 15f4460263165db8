"""The Google Cloud stand-in's HTTP server: routes Google's REST paths to the state and the builds."""

from __future__ import annotations

import argparse
import re
import threading
from typing import Any

from dev.standins.gcp import builds
from dev.standins.gcp.state import GcpState
from dev.standins.google_errors import google_error
from dev.standins.json_api import JsonApiStandIn, Request
from dev.standins.serving import serve_alone

_PROJECT = re.compile(r"^/v3/projects/(?P<id>[^/:]+)$")
_OPERATION = re.compile(r"^/v[13]/(?P<name>operations/.+)$")
_BILLING = re.compile(r"^/v1/projects/(?P<id>[^/]+)/billingInfo$")
_ENABLE = re.compile(r"^/v1/projects/(?P<id>[^/]+)/services:batchEnable$")
_BUILDS = re.compile(r"^/v1/projects/(?P<id>[^/]+)/builds$")
_BUILD = re.compile(r"^/v1/projects/(?P<id>[^/]+)/builds/(?P<build>[^/:]+)$")
_RUN_SERVICE = re.compile(r"^/v2/(?P<name>projects/[^/]+/locations/[^/]+/services/[^/]+)$")


class GcpStandIn(JsonApiStandIn):
    """Run on a thread of this process (make dev, tests) or alone (`python -m dev.standins.gcp.server`)."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.state = GcpState()
        super().__init__(port, host, "gcp-stand-in")

    def route(self, request: Request) -> tuple[int, Any]:
        state, method, path, query, body = self.state, request.method, request.path, request.query, request.body
        if method == "POST" and path == "/v3/projects":
            return state.create_project(body)
        if method == "GET" and path == "/v3/projects:search":
            return state.search_projects((query.get("query") or [""])[0])
        if (m := _PROJECT.match(path)) and method in ("GET", "DELETE"):
            return state.get_project(m["id"]) if method == "GET" else state.delete_project(m["id"])
        if (m := _OPERATION.match(path)) and method == "GET":
            with state.lock:
                op = state.operations.get(m["name"])
            return (200, op) if op else (404, google_error(404, f"operation {m['name']} not found"))
        if (m := _BILLING.match(path)) and method == "PUT":
            status, _ = state.get_project(m["id"])
            if status != 200:
                return 403, google_error(403, f"The caller does not have permission on project {m['id']}")
            info = {
                "name": f"projects/{m['id']}/billingInfo",
                "projectId": m["id"],
                "billingAccountName": str(body.get("billingAccountName") or ""),
                "billingEnabled": bool(body.get("billingAccountName")),
            }
            with state.lock:
                state.billing[m["id"]] = info
            return 200, info
        if (m := _ENABLE.match(path)) and method == "POST":
            ids = [str(s) for s in body.get("serviceIds") or []]
            if not ids or len(ids) > 20:
                return 400, google_error(400, "serviceIds must name 1 to 20 services")
            with state.lock:
                state.enabled.setdefault(m["id"], set()).update(ids)
                services = [{"name": f"projects/{m['id']}/services/{s}", "state": "ENABLED"} for s in ids]
                response = {"@type": "type.googleapis.com/google.api.serviceusage.v1.BatchEnableServicesResponse"}
                return 200, state.operation(
                    f"operations/acf.{m['id']}.{len(state.operations)}", {**response, "services": services}
                )
        if (m := _BUILDS.match(path)) and method == "POST":
            return builds.create_build(state, self.base_url, m["id"], body)
        if (m := _BUILDS.match(path)) and method == "GET":
            return builds.list_builds(state, m["id"], (query.get("filter") or [""])[0])
        if (m := _BUILD.match(path)) and method == "GET":
            with state.lock:
                build = state.builds.get(m["build"])
                found = dict(build) if build and build["projectId"] == m["id"] else None
            return (200, found) if found else (404, google_error(404, f"build {m['build']} not found"))
        if (m := _RUN_SERVICE.match(path)) and method == "GET":
            with state.lock:
                service = state.services.get(m["name"])
            return (200, service) if service else (404, google_error(404, f"service {m['name']} not found"))
        return 404, google_error(404, f"the stand-in does not serve {method} {path}")

    def add_fault(self, spec: dict[str, Any]) -> None:
        """Cloud Build scripts (`lose_final_callback`, `fail_build`, `hold_build`) or an HTTP fault (faults.py)."""
        times = int(spec.get("times", 1))
        with self.state.lock:
            if spec.get("lose_final_callback"):
                self.state.script.lose_final_callback += times
                return
            if spec.get("hold_build"):
                self.state.script.hold += times
                return
            if spec.get("fail_build"):
                self.state.script.fail += times
                self.state.script.fail_message = str(spec.get("message") or self.state.script.fail_message)
                return
        if "foreign_project" in spec:  # an id someone else owns: GET → 403, create → 409
            self.state.add_foreign(str(spec["foreign_project"]))
            return
        self.faults.add(spec)

    def clear_faults(self) -> None:
        self.faults.clear()
        with self.state.lock:
            self.state.script.lose_final_callback = self.state.script.fail = self.state.script.hold = 0
            self.state.held_builds_go.set()
            self.state.held_builds_go = threading.Event()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    serve_alone("Google Cloud", GcpStandIn(parser.parse_args().port))


if __name__ == "__main__":
    main()
