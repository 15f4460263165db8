"""The stand-in Cloud Build: records a build and runs it on a thread, posting its progress callbacks.

The build's `curl` steps are run for real (their substitutions filled in): Planter's build posts its
progress that way. Other steps are interpreted by their `id`: `build` fails when the stand-in was told
to fail the next build, `deploy` creates the Cloud Run service, `outcome` posts the step's outcome with
the service's URL — unless the stand-in was told to lose it. As in Cloud Build, a posting step that
fails (no answer, or an HTTP error as `curl -f` sees it; a lost outcome too) fails the build unless the
step sets `allowFailure`. A held build stays QUEUED (as one waiting for Cloud Build's capacity does)
until the faults are cleared.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from dev.standins.gcp.state import GcpState
from dev.standins.google_errors import google_error

_STEP_PAUSE = 0.05  # seconds per build step: long enough to be seen, short enough for tests


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
        hold = state.script.hold > 0
        state.script.lose_final_callback -= 1 if lose else 0
        state.script.fail -= 1 if fail else 0
        state.script.hold -= 1 if hold else 0
        go = state.held_builds_go if hold else None
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
        if lose:
            state.lost_final_callbacks.add(build_id)
        metadata = {"@type": "type.googleapis.com/google.devtools.cloudbuild.v1.BuildOperationMetadata", "build": build}
        op = state.operation(f"operations/build/{project_id}/{build_id}", None, metadata)
    threading.Thread(
        target=_run, args=(state, build_id, lose, fail, go), daemon=True, name=f"build-{build_id[:8]}"
    ).start()
    return 200, op


def _substitute(text: str, subs: dict[str, str]) -> str:
    for key in sorted(subs, key=len, reverse=True):  # $_CALLBACK_TOKEN before a shorter $_CALLBACK...
        text = text.replace(f"${key}", subs[key])
    return text


def _post(url: str, token: str, body: dict[str, Any]) -> bool:
    """Whether the POST succeeded as `curl -f` sees it: an answer below 400 (no answer: failed)."""
    try:
        answer = httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    except httpx.HTTPError:
        return False
    return answer.status_code < 400


def _run_curl(args: list[str], subs: dict[str, str]) -> bool:
    """A `curl -sf -X POST URL -H ... -d BODY` step, run for real with the build's substitutions."""
    args = [_substitute(a, subs) for a in args]
    url = next(a for i, a in enumerate(args) if a.startswith("http") and args[i - 1] != "-H")
    headers = [args[i + 1] for i, a in enumerate(args) if a == "-H"]
    token = next((h.split("Bearer ", 1)[1] for h in headers if h.startswith("Authorization: Bearer ")), "")
    body = json.loads(args[args.index("-d") + 1])
    return _post(url, token, body)


def _end(state: GcpState, build: dict[str, Any], status: str, **fields: Any) -> None:
    with state.lock:
        build.update(status=status, finishTime=_now(), **fields)
        _finish_operation(state, build)


def _run(state: GcpState, build_id: str, lose_final: bool, fail: bool, go: threading.Event | None) -> None:
    """Steps in order: `curl` steps are posted for real; `deploy` makes the Cloud Run service;
    `outcome` (a shell script in a real build) posts the outcome with the service's URL. A posting
    step that fails (a lost outcome included) fails the build, unless it allows failure."""
    if go is not None:
        go.wait()  # a held build: QUEUED until the faults are cleared
    with state.lock:
        build = state.builds[build_id]
        build["status"], build["startTime"] = "WORKING", _now()
        project_id = build["projectId"]
        subs = {**build["substitutions"], "BUILD_ID": build_id, "PROJECT_ID": project_id}
        steps = list(build["steps"])
    service, region = subs.get("_SERVICE", "app"), subs.get("_REGION", "us-central1")
    name = f"projects/{project_id}/locations/{region}/services/{service}"
    for number, step in enumerate(steps):
        time.sleep(_STEP_PAUSE)
        posted = True
        if str(step.get("name", "")).endswith("/curl"):
            posted = _run_curl([str(a) for a in step.get("args") or []], subs)
        elif step.get("id") == "build" and fail:
            _end(state, build, "FAILURE", statusDetail=state.script.fail_message)
            return  # Cloud Build runs no step after a failing one: no outcome is posted
        elif step.get("id") == "deploy":
            uri = f"https://{service}-{uuid.uuid5(uuid.NAMESPACE_DNS, name).hex[:10]}-uc.a.run.app"
            with state.lock:
                state.services[name] = {"name": name, "uri": uri, "urls": [uri]}
        elif step.get("id") == "outcome":
            posted = not lose_final and _post_outcome(state, build_id, subs, name)
        if not posted and not step.get("allowFailure"):
            _end(state, build, "FAILURE", statusDetail=f'Step #{number} - "{step.get("id")}": exit status 22')
            return
    _end(state, build, "SUCCESS", results={"images": [{"name": subs.get("_IMAGE", "")}]})


def _post_outcome(state: GcpState, build_id: str, subs: dict[str, str], service_name: str) -> bool:
    with state.lock:
        uri = state.services.get(service_name, {}).get("uri", "")
    outcome = {
        "update_id": f"{build_id}-outcome",
        "step": subs.get("_STEP", "deploying"),
        "step_outcome": "succeeded",
        "deployment_url": uri,
        "message": f"Deployed to {uri}",
    }
    return _post(subs.get("_CALLBACK_URL", ""), subs.get("_CALLBACK_TOKEN", ""), outcome)


def _finish_operation(state: GcpState, build: dict[str, Any]) -> None:
    op = state.operations.get(f"operations/build/{build['projectId']}/{build['id']}")
    if op is not None:
        op["done"], op["response"] = True, {"@type": "type.googleapis.com/google.devtools.cloudbuild.v1.Build", **build}


# Cloud Build's list filter on tags, as gcloud sends `--filter=tags:T`: `tags="T"`, true when one of
# the build's tags is T. The stand-in serves only this form (Planter's one filter), and answers any
# other filter 400 INVALID_ARGUMENT, as Cloud Build answers one it cannot parse, rather than ignore it.
_TAG_FILTER = re.compile(r'^tags\s*=\s*"(?P<tag>[^"]*)"$')


def list_builds(state: GcpState, project_id: str, filter_: str) -> tuple[int, dict[str, Any]]:
    """All the project's builds, or those a `tags="T"` filter selects; newest first like Cloud Build."""
    match = _TAG_FILTER.match(filter_.strip())
    if filter_.strip() and match is None:
        return 400, google_error(400, f'the stand-in\'s Cloud Build filters only on tags="T", not {filter_!r}')
    with state.lock:
        found = [
            dict(b)
            for b in reversed(state.builds.values())  # created in order: reversed is newest first
            if b["projectId"] == project_id and (match is None or match["tag"] in b["tags"])
        ]
    return 200, {"builds": found}
