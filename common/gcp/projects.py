"""Creating (or adopting) the task's Google Cloud project, linking billing and enabling services."""

from __future__ import annotations

import re
import threading
from typing import Any

from common.gcp.client import GcpClient, GcpError

TASK_LABEL = "planter-task"
DEPLOY_SERVICES = ("run.googleapis.com", "cloudbuild.googleapis.com", "artifactregistry.googleapis.com")


class ProjectIdsTaken(Exception):
    """Every candidate id belongs to someone else."""


def candidate_ids(name: str, task_id: str) -> list[str]:
    """Project ids are global, 6-30 of [a-z0-9-], starting with a letter, not ending with '-'."""
    base = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    base = re.sub(r"-{2,}", "-", base)
    if not base or not base[0].isalpha():
        base = f"p-{base}".rstrip("-")
    hex_id = task_id.replace("-", "")

    def fit(text: str) -> str:
        text = text[:30].rstrip("-")
        return text if len(text) >= 6 else f"{text}-planter"[:30]

    return [fit(base), fit(f"{base[:21].rstrip('-')}-{hex_id[:8]}"), fit(f"{base[:17].rstrip('-')}-{hex_id[:12]}")]


def ensure_project(
    gcp: GcpClient, parent: str, project_id: str, display_name: str, task_id: str, stop: threading.Event
) -> tuple[dict[str, Any], bool] | None:
    """The project made (or earlier made) for this task under this id: (project, adopted); None when
    the id is taken by someone else (a 409, and the project is not ours or not visible: 403)."""
    body = {
        "projectId": project_id,
        "parent": parent,
        "displayName": display_name[:30],
        "labels": {TASK_LABEL: task_id},
    }
    try:
        op = gcp.call("POST", "resourcemanager", "v3/projects", body)
        return gcp.wait_operation("resourcemanager", "v3", op, stop), False
    except GcpError as error:
        if error.status != 409:
            raise
    try:
        found = gcp.call("GET", "resourcemanager", f"v3/projects/{project_id}")
    except GcpError as error:
        if error.status in (403, 404):
            return None
        raise
    if (found.get("labels") or {}).get(TASK_LABEL) != task_id:
        return None
    return found, True


def link_billing(gcp: GcpClient, project_id: str, billing_account: str) -> dict[str, Any]:
    """Idempotent: the same account again is a no-op at Google."""
    body = {"billingAccountName": billing_account}
    info: dict[str, Any] = gcp.call("PUT", "billing", f"v1/projects/{project_id}/billingInfo", body)
    return info


def enable_services(gcp: GcpClient, project_id: str, stop: threading.Event) -> list[str]:
    ids = list(DEPLOY_SERVICES)
    for start in range(0, len(ids), 20):  # batchEnable takes at most 20 per call
        body = {"serviceIds": ids[start : start + 20]}
        op = gcp.call("POST", "serviceusage", f"v1/projects/{project_id}/services:batchEnable", body)
        gcp.wait_operation("serviceusage", "v1", op, stop)
    return ids


def labelled(gcp: GcpClient, task_id: str) -> list[str]:
    """The ids of the active projects labelled as ``task_id``'s: what its attempts made, also those no
    step recorded (made, then billing refused; or the task cancelled while the step ran). Search is
    eventually consistent at Google, which a teardown, long after the creation, can live with."""
    found: list[str] = []
    params = {"query": f"labels.{TASK_LABEL}:{task_id}"}
    while True:
        page = gcp.call("GET", "resourcemanager", "v3/projects:search", params=params)
        for project in page.get("projects") or []:
            # The query is case-insensitive; the label must be this task's exactly, the project still standing.
            if (project.get("labels") or {}).get(TASK_LABEL) == task_id and project.get("state") == "ACTIVE":
                found.append(str(project["projectId"]))
        if not page.get("nextPageToken"):
            return found
        params["pageToken"] = str(page["nextPageToken"])


def delete_project(gcp: GcpClient, project_id: str, stop: threading.Event) -> bool:
    """True when deleted now; False when it was already gone (or being deleted)."""
    try:
        found = gcp.call("GET", "resourcemanager", f"v3/projects/{project_id}")
    except GcpError as error:
        if error.status in (403, 404):  # gone, or never ours: nothing of ours is left to delete
            return False
        raise
    if found.get("state") == "DELETE_REQUESTED":
        return False
    op = gcp.call("DELETE", "resourcemanager", f"v3/projects/{project_id}")
    gcp.wait_operation("resourcemanager", "v3", op, stop)
    return True
