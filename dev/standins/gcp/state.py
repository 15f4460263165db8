"""What the Google Cloud stand-in remembers: projects, operations, builds, Cloud Run services."""

from __future__ import annotations

import itertools
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from dev.standins.google_errors import google_error

_LABEL_TERM = re.compile(r"labels\.(?P<key>[a-z0-9_-]+):(?P<value>[a-z0-9_-]+)", re.IGNORECASE)
# A project id taken by someone else: its GET answers 403 and creating it answers 409.
FOREIGN_OWNER = "someone-else"


@dataclass
class BuildScript:
    """Injected build behaviour, consumed one build at a time (`_faults` on the stand-in)."""

    lose_final_callback: int = 0
    fail: int = 0
    hold: int = 0  # builds that stay QUEUED until the faults are cleared (a build still running)
    fail_message: str = 'Step #1 - "build": exit status 1'


@dataclass
class GcpState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)  # project id → Project
    owners: dict[str, str] = field(default_factory=dict)  # project id → owner ("" for us)
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    billing: dict[str, dict[str, Any]] = field(default_factory=dict)
    enabled: dict[str, set[str]] = field(default_factory=dict)
    builds: dict[str, dict[str, Any]] = field(default_factory=dict)  # build id → Build
    services: dict[str, dict[str, Any]] = field(default_factory=dict)  # full service name → Service
    script: BuildScript = field(default_factory=BuildScript)
    # Set (and replaced by a fresh event) when the faults are cleared: the held builds go on.
    held_builds_go: threading.Event = field(default_factory=threading.Event)
    lost_final_callbacks: set[str] = field(default_factory=set)  # build ids: what a fault run checks against
    numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(100000000001))

    def operation(
        self, name: str, response: dict[str, Any] | None, metadata: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        op: dict[str, Any] = {"name": name, "done": response is not None}
        if response is not None:
            op["response"] = response
        if metadata is not None:
            op["metadata"] = metadata
        self.operations[name] = op
        return op

    def add_foreign(self, project_id: str) -> None:
        with self.lock:
            self.projects[project_id] = {"projectId": project_id, "name": f"projects/{next(self.numbers)}"}
            self.owners[project_id] = FOREIGN_OWNER

    def create_project(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        project_id = str(body.get("projectId") or "")
        if not project_id:
            return 400, google_error(400, "projectId is required")
        with self.lock:
            if project_id in self.projects:
                return 409, google_error(409, f"Requested entity already exists: project {project_id}")
            project = {
                "name": f"projects/{next(self.numbers)}",
                "projectId": project_id,
                "parent": body.get("parent", ""),
                "displayName": body.get("displayName", project_id),
                "labels": dict(body.get("labels") or {}),
                "state": "ACTIVE",
                "etag": uuid.uuid4().hex,
            }
            self.projects[project_id] = project
            self.owners[project_id] = ""
            response = {"@type": "type.googleapis.com/google.cloud.resourcemanager.v3.Project", **project}
            return 200, self.operation(f"operations/cp.{uuid.uuid4().int % 10**19}", response)

    def get_project(self, project_id: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            project = self.projects.get(project_id)
            if project is None or self.owners.get(project_id):
                # Google answers 403 for ids that do not exist as well as for others' projects.
                return 403, google_error(403, f"The caller does not have permission on project {project_id}")
            return 200, dict(project)

    def search_projects(self, query: str) -> tuple[int, dict[str, Any]]:
        """Resource Manager's projects.search for the query Planter sends: `labels.KEY:VALUE` terms
        (any of them matching, case-insensitive, as Google's); others' projects are never shown."""
        terms = [_LABEL_TERM.fullmatch(term) for term in query.split()]
        if any(term is None for term in terms):
            return 400, google_error(400, f"the stand-in serves only labels.KEY:VALUE queries, not {query!r}")
        wanted = {(term["key"].lower(), term["value"].lower()) for term in terms if term}
        with self.lock:
            found = [
                dict(project)
                for project_id, project in self.projects.items()
                if not self.owners.get(project_id) and (not wanted or _labels_of(project) & wanted)
            ]
        return 200, ({"projects": found} if found else {})

    def delete_project(self, project_id: str) -> tuple[int, dict[str, Any]]:
        status, project = self.get_project(project_id)
        if status != 200:
            return status, project
        with self.lock:
            self.projects[project_id]["state"] = "DELETE_REQUESTED"
            response = {"@type": "type.googleapis.com/google.cloud.resourcemanager.v3.Project", **project}
            response["state"] = "DELETE_REQUESTED"
            return 200, self.operation(f"operations/dp.{uuid.uuid4().int % 10**19}", response)


def _labels_of(project: dict[str, Any]) -> set[tuple[str, str]]:
    return {(str(k).lower(), str(v).lower()) for k, v in (project.get("labels") or {}).items()}
