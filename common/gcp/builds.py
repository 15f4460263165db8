"""The Cloud Build build that builds the planted repository and deploys it to Cloud Run.

Builds are not idempotent: each is tagged with its task, its task's step, and that step's attempt.
Every attempt of a step first lists the step's builds (by the step tag, whatever their attempt): a
redelivery, or a new attempt after the functions were killed mid-step, adopts the build an earlier
attempt started, and a new build starts only when every earlier one ended without success.
"""

from __future__ import annotations

import re
from typing import Any

from common.gcp.client import GcpClient, GcpError

RUNNING = frozenset({"PENDING", "QUEUED", "WORKING"})
FAILED = frozenset({"FAILURE", "INTERNAL_ERROR", "TIMEOUT", "CANCELLED", "EXPIRED"})
ADOPTABLE = RUNNING | {"SUCCESS"}  # a build a later attempt waits on (or completes from) instead of a new one


def task_tag(task_id: str) -> str:
    return f"planter-task-{task_id}"


def step_tag(task_id: str, step: str) -> str:
    """Carried by every attempt's build of this step of this task: what an attempt looks for."""
    return f"planter-{step.replace('_', '-')}-{task_id}"


def attempt_tag(task_id: str, step: str, attempt: int) -> str:
    """Which attempt started a build: for a person reading the build history, not for queries."""
    return f"{step_tag(task_id, step)}-a{attempt}"


def build_tags(task_id: str, step: str, attempt: int) -> list[str]:
    return [task_tag(task_id), step_tag(task_id, step), attempt_tag(task_id, step, attempt)]


def service_name(repo: str) -> str:
    """Cloud Run names: ≤ 49 of [a-z0-9-], starting with a letter."""
    name = re.sub(r"[^a-z0-9-]+", "-", repo.lower()).strip("-")[:49].rstrip("-")
    return name if name and name[0].isalpha() else f"app-{name}"[:49].rstrip("-")


def build_config(
    clone_url: str,
    service: str,
    region: str,
    callback_url: str,
    token: str,
    step: str,
    percent: int,
    *,
    timeout_seconds: float,
) -> dict[str, Any]:
    """Clone, build, push and deploy; between them the build posts its progress to Planter (the
    step's phase, a few percent above the step's own), and its last step posts the outcome with the
    Cloud Run URL. A failing step ends a build with no outcome posted: the scheduled check finds it.

    The posting steps may fail (`allowFailure`) without failing the build: what Planter does with
    a callback must not undo a deploy. Planter may be down (its functions killed) or refuse the
    outcome with 409 (after a kill the step is not waiting until the next attempt adopts the build);
    the scheduled check, or the next attempt, reads the build's own status instead.

    The build's own `timeout` is the step's wait for it: past it, Planter gives up on the build and
    Cloud Build stops it too (its default is 60 minutes), so a build nobody waits for no longer deploys."""

    def report(phase: str, offset: int) -> dict[str, Any]:
        update = f'"update_id":"$BUILD_ID-{phase}","status":"$_STEP","progress_percent":{percent + offset}'
        body = f'{{{update},"message":"Cloud Build: {phase}"}}'
        return {
            "id": f"progress-{phase}",
            "name": "gcr.io/cloud-builders/curl",
            "args": ["-sf", "-X", "POST", "$_CALLBACK_URL", "-H", "Authorization: Bearer $_CALLBACK_TOKEN",
                     "-H", "Content-Type: application/json", "-d", body],
            "allowFailure": True,
        }  # fmt: skip

    outcome = (
        'URL=$(gcloud run services describe $_SERVICE --region $_REGION --format="value(status.url)") && '
        'curl -sf -X POST "$_CALLBACK_URL" -H "Authorization: Bearer $_CALLBACK_TOKEN" '
        '-H "Content-Type: application/json" -d "{\\"update_id\\":\\"$BUILD_ID-outcome\\",'
        '\\"step\\":\\"$_STEP\\",\\"step_outcome\\":\\"succeeded\\",'
        '\\"deployment_url\\":\\"$$URL\\",\\"message\\":\\"Deployed to $$URL\\"}"'
    )
    sdk = "gcr.io/google.com/cloudsdktool/cloud-sdk"
    return {
        "steps": [
            {"id": "clone", "name": "gcr.io/cloud-builders/git", "args": ["clone", "--depth=1", clone_url, "."]},
            report("building", 3),
            {"id": "build", "name": "gcr.io/cloud-builders/docker", "args": ["build", "-t", "$_IMAGE", "."]},
            report("pushing", 6),
            {"id": "push", "name": "gcr.io/cloud-builders/docker", "args": ["push", "$_IMAGE"]},
            report("deploying", 9),
            {
                "id": "deploy",
                "name": sdk,
                "entrypoint": "gcloud",
                "args": ["run", "deploy", "$_SERVICE", "--image", "$_IMAGE", "--region", "$_REGION", "--quiet"],
            },
            {"id": "outcome", "name": sdk, "entrypoint": "bash", "args": ["-c", outcome], "allowFailure": True},
        ],
        "images": ["$_IMAGE"],
        "substitutions": {
            "_CALLBACK_URL": callback_url,
            "_CALLBACK_TOKEN": token,
            "_SERVICE": service,
            "_REGION": region,
            "_STEP": step,
            "_IMAGE": f"{region}-docker.pkg.dev/$PROJECT_ID/planter/{service}:$BUILD_ID",
        },
        "options": {"substitutionOption": "ALLOW_LOOSE"},
        "timeout": f"{int(timeout_seconds)}s",
    }


def find_builds(gcp: GcpClient, project_id: str, tag: str) -> list[dict[str, Any]]:
    """The builds carrying ``tag``, newest first (Cloud Build lists by create_time, descending).
    Cloud Build's list filter takes `tags="T"` (true when one of a build's tags is T), as gcloud's
    own `--filter=tags:T` is sent; one step's builds are at most its attempts: one page."""
    found = gcp.call("GET", "cloudbuild", f"v1/projects/{project_id}/builds", params={"filter": f'tags="{tag}"'})
    builds: list[dict[str, Any]] = found.get("builds") or []
    return builds


def adoptable(builds: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest of ``builds`` still running or succeeded; None when every one ended without
    success (failed, cancelled, timed out, expired), so that a new build is a real retry."""
    return next((b for b in builds if b.get("status") in ADOPTABLE), None)


def create_build(gcp: GcpClient, project_id: str, config: dict[str, Any], tags: list[str]) -> dict[str, Any]:
    op = gcp.call("POST", "cloudbuild", f"v1/projects/{project_id}/builds", {**config, "tags": tags})
    build: dict[str, Any] = (op.get("metadata") or {}).get("build") or {}
    if not build.get("id"):
        raise GcpError(502, "cloudbuild answered an operation without its build")
    return build


def get_build(gcp: GcpClient, project_id: str, build_id: str) -> dict[str, Any]:
    build: dict[str, Any] = gcp.call("GET", "cloudbuild", f"v1/projects/{project_id}/builds/{build_id}")
    return build


def service_url(gcp: GcpClient, project_id: str, region: str, service: str) -> str:
    found = gcp.call("GET", "run", f"v2/projects/{project_id}/locations/{region}/services/{service}")
    return str(found.get("uri") or (found.get("urls") or [""])[0])
