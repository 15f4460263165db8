"""The stand-in Cloud Build: records a build and runs it on a thread, posting its progress callbacks.

A real build's steps would `curl` Planter's callback route with the substitutions below; here the
stand-in does it: "building" 40 %, "pushing" 65 %, "deploying" 85 %, then the Cloud Run service
exists and the outcome callback (`step`, `step_outcome`, `deployment_url`) is posted — unless the
script says to lose it or to fail the build.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from dev.standins.gcp.state import GcpState, google_error

PHASES = (("building", 40), ("pushing", 65), ("deploying", 85))
_PHASE_PAUSE = 0.05  # seconds between phases: long enough to be seen, short enough for tests


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def create_build(state: GcpState, base_url: str, project_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    if not body.get("steps"):
        return 400, google_error(400, "a build needs at least one step")
    with state.lock:
        if project_id not in state.projects or state.owners.get(project_id):
            return 403, google_error(403, f"The caller does not have permission on project {project_id}")
        build_id = str(uuid.uuid4())
        lose = state.script.lose_final_callback > 0
        fail = state.script.fail > 0
        state.script.lose_final_callback -= 1 if lose else 0
        state.script.fail -= 1 if fail else 0
        build = {
            "id": build_id,
            "projectId": project_id,
            "status": "QUEUED",
            "steps": body["steps"],
            "tags": list(body.get("tags") or []),
            "substitutions": dict(body.get("substitutions") or {}),
            "createTime": _now(),
            "logUrl": f"{base_url}/console/cloud-build/builds/{build_id}?project={project_id}",
        }
        state.builds[build_id] = build
        metadata = {"@type": "type.googleapis.com/google.devtools.cloudbuild.v1.BuildOperationMetadata", "build": build}
        op = state.operation(f"operations/build/{project_id}/{build_id}", None, metadata)
    threading.Thread(target=_run, args=(state, build_id, lose, fail), daemon=True, name=f"build-{build_id[:8]}").start()
    return 200, op


def _post(subs: dict[str, str], body: dict[str, Any]) -> None:
    url, token = subs.get("_CALLBACK_URL"), subs.get("_CALLBACK_TOKEN")
    if not url or not token:
        return
    # A real build step's curl fails the same way when Planter is down: the scheduled check finds the outcome.
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _run(state: GcpState, build_id: str, lose_final: bool, fail: bool) -> None:
    with state.lock:
        build = state.builds[build_id]
        build["status"], build["startTime"] = "WORKING", _now()
        subs = dict(build["substitutions"])
    step = subs.get("_STEP", "deploying")
    for phase, percent in PHASES:
        time.sleep(_PHASE_PAUSE)
        update = {"update_id": f"{build_id}-{phase}", "status": phase, "progress_percent": percent}
        _post(subs, {**update, "message": f"Cloud Build {build_id[:8]}: {phase}"})
        if fail and phase == "building":
            break
    service = subs.get("_SERVICE", "app")
    region = subs.get("_REGION", "us-central1")
    with state.lock:
        project_id = build["projectId"]
        build["finishTime"] = _now()
        if fail:
            build["status"], build["statusDetail"] = "FAILURE", state.script.fail_message
        else:
            name = f"projects/{project_id}/locations/{region}/services/{service}"
            uri = f"https://{service}-{uuid.uuid5(uuid.NAMESPACE_DNS, name).hex[:10]}-uc.a.run.app"
            state.services[name] = {
                "name": name,
                "uri": uri,
                "urls": [uri],
                "latestReadyRevision": f"{name}/revisions/1",
            }
            build["status"] = "SUCCESS"
            build["results"] = {"images": [{"name": f"gcr.io/{project_id}/{service}"}]}
        op = state.operations.get(f"operations/build/{project_id}/{build_id}")
        if op is not None:
            op["done"], op["response"] = (
                True,
                {"@type": "type.googleapis.com/google.devtools.cloudbuild.v1.Build", **build},
            )
        finished = dict(build)
    if lose_final:
        return
    outcome: dict[str, Any] = {
        "update_id": f"{build_id}-outcome",
        "step": step,
        "message": f"Cloud Build {build_id[:8]}",
    }
    if finished["status"] == "SUCCESS":
        uri = state.services[f"projects/{project_id}/locations/{region}/services/{service}"]["uri"]
        outcome.update(step_outcome="succeeded", deployment_url=uri, message=f"Deployed to {uri}")
    else:
        outcome.update(step_outcome="failed", error=f"{finished['statusDetail']} (log: {finished['logUrl']})"[:1000])
    _post(subs, outcome)


def list_builds(state: GcpState, project_id: str, filter_: str) -> dict[str, Any]:
    """`filter=tags="X"` (the only filter Planter uses); newest first like Cloud Build."""
    tag = filter_.partition("=")[2].strip().strip('"') if filter_.startswith("tags") else None
    with state.lock:
        found = [
            dict(b) for b in state.builds.values() if b["projectId"] == project_id and (tag is None or tag in b["tags"])
        ]
    return {"builds": sorted(found, key=lambda b: b["createTime"], reverse=True)}
