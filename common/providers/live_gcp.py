"""The live provider's Google Cloud steps: the task's project, its build and deployment, teardown.

``deploying`` (and ``building_release``) submit a Cloud Build build and hand off: the step waits
while the build posts its progress to Planter's callback route with the task's callback token and
finally the outcome; ``check`` asks Cloud Build when that outcome is late or lost. Every step's
``result`` lists what it made (project id, build id, log URL, service URL) for a teardown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from common import pipeline
from common.gcp import builds, projects
from common.gcp.client import GcpClient, GcpError
from common.providers import HandedOff, StepContext, StepFailed, StepOutcome, StepRateLimited, StepRefused

GCP_STEPS = frozenset({"creating_gcp_project", "deploying", "building_release", "redeploying", "deleting_gcp_project"})
T = TypeVar("T")
StepAnswer = StepOutcome | HandedOff  # what a step may answer: done, or waiting on outside work


@dataclass(frozen=True)
class GcpConfig:
    parent: str  # "organizations/N" or "folders/N": where task projects are created
    billing_account: str  # "billingAccounts/XXXXXX-XXXXXX-XXXXXX"
    region: str  # Cloud Run region
    callback_base_url: str  # Planter's API base, as the build reaches it
    check_after_seconds: float = 30.0  # the scheduled check of a waiting build
    build_timeout_seconds: float = 1800.0


@dataclass(frozen=True)
class GcpSteps:
    config: GcpConfig
    gcp: GcpClient

    def run(self, ctx: StepContext) -> StepOutcome | HandedOff:
        handlers: dict[str, Callable[[StepContext], StepOutcome | HandedOff]] = {
            "creating_gcp_project": self.creating_gcp_project,
            "deploying": self.deploying,
            "building_release": self.deploying,
            "redeploying": self.redeploying,
            "deleting_gcp_project": self.deleting_gcp_project,
        }
        return _classified(lambda: handlers[ctx.step](ctx))

    def check(self, ctx: StepContext) -> StepOutcome | HandedOff:
        return _classified(lambda: self._build_outcome(ctx, dict(ctx.handoff)))

    # --- the project -------------------------------------------------------------------------
    def creating_gcp_project(self, ctx: StepContext) -> StepOutcome:
        for project_id in projects.candidate_ids(ctx.project_name, ctx.task_id):
            made = projects.ensure_project(
                self.gcp, self.config.parent, project_id, ctx.project_name, ctx.task_id, ctx.stop
            )
            if made is not None:
                break
        else:
            raise StepRefused(
                f"every Google Cloud project id tried for {ctx.project_name!r} belongs to someone else: "
                "choose another project name"
            )
        project, adopted = made
        billing = projects.link_billing(self.gcp, project_id, self.config.billing_account)
        services = projects.enable_services(self.gcp, project_id, ctx.stop)
        result = {
            "gcp_project_id": project_id,
            "project_number": str(project.get("name", "")).removeprefix("projects/"),
            "parent": self.config.parent,
            "billing_account": billing.get("billingAccountName", self.config.billing_account),
            "services_enabled": services,
            "adopted": adopted,
        }
        return StepOutcome(facts={"gcp_project_id": project_id}, result=result)

    def deleting_gcp_project(self, ctx: StepContext) -> StepOutcome:
        # The project the project task recorded, and any other its attempts made and did not record
        # (found by the task label every attempt sets).
        recorded = str(ctx.facts.get("gcp_project_id") or "")
        project_task = str(ctx.payload.get("project_task_id") or "")
        found = projects.labelled(self.gcp, project_task) if project_task else []
        ids = list(dict.fromkeys(p for p in (recorded, *found) if p))
        deleted = [p for p in ids if projects.delete_project(self.gcp, p, ctx.stop)]
        state = "deleted" if deleted else "absent"
        project_id = deleted[0] if deleted else recorded
        result = {"gcp_project_id": project_id or None, "gcp_project": state, "deleted": deleted}
        facts = {"gcp_project": state, **({"gcp_project_id": deleted[0]} if deleted else {})}
        return StepOutcome(facts=facts, message=f"Google Cloud project {state}", result=result)

    # --- the build ---------------------------------------------------------------------------
    def _project_of(self, ctx: StepContext) -> str:
        project_id = str(ctx.facts.get("gcp_project_id") or "")
        if not project_id:
            raise StepRefused("the task has no Google Cloud project: its creating_gcp_project step did not record one")
        return project_id

    def deploying(self, ctx: StepContext) -> StepOutcome | HandedOff:
        project_id = self._project_of(ctx)
        repo_url = str(ctx.facts.get("repo_url") or "").rstrip("/")
        if not repo_url:
            raise StepRefused("the task has no repository to build: its forking_template step did not record one")
        service = builds.service_name(repo_url.rsplit("/", 1)[-1])
        # An earlier delivery or attempt (say, one killed after submitting) may have started the build.
        build = builds.adoptable(builds.find_builds(self.gcp, project_id, builds.step_tag(ctx.task_id, ctx.step)))
        if build is None:
            percent = pipeline.BY_NAME[ctx.step].progress_percent
            callback = f"{self.config.callback_base_url.rstrip('/')}/api/v1/tasks/{ctx.task_id}/progress"
            config = builds.build_config(
                f"{repo_url}.git",
                service,
                self.config.region,
                callback,
                ctx.callback_token(),
                ctx.step,
                percent,
                timeout_seconds=self.config.build_timeout_seconds,
            )
            build = builds.create_build(
                self.gcp, project_id, config, builds.build_tags(ctx.task_id, ctx.step, ctx.attempt)
            )
        state = {"project_id": project_id, "build_id": build["id"], "service": service, "region": self.config.region}
        state["made"] = _made(state, build)
        if ctx.step == "building_release":  # the release is the build: its id, however the step ends
            state["facts"] = {"release_id": build["id"]}
        return self._build_outcome(ctx, state, build)

    def redeploying(self, ctx: StepContext) -> StepOutcome:
        """After building_release's build deployed the new revision: the service's URL as it is now."""
        project_id = self._project_of(ctx)
        service = builds.service_name(str(ctx.facts.get("repo_url") or "").rstrip("/").rsplit("/", 1)[-1])
        url = builds.service_url(self.gcp, project_id, self.config.region, service)
        result = {"gcp_project_id": project_id, "service": service, "service_url": url}
        return StepOutcome(facts={"deployment_url": url}, message="New release deployed", result=result)

    def _build_outcome(
        self, ctx: StepContext, state: dict[str, Any], build: dict[str, Any] | None = None
    ) -> StepOutcome | HandedOff:
        project_id, build_id = str(state.get("project_id") or ""), str(state.get("build_id") or "")
        if not project_id or not build_id:
            raise StepFailed(f"{ctx.step} is waiting for no build: starting it again")
        build = build or builds.get_build(self.gcp, project_id, build_id)
        status = str(build.get("status") or "")
        if status in builds.RUNNING:
            return HandedOff(
                check_after=self.config.check_after_seconds,
                state=state,
                timeout_seconds=self.config.build_timeout_seconds,
            )
        log_url = build.get("logUrl", "")
        if status in builds.FAILED or status != "SUCCESS":
            detail = build.get("statusDetail") or status
            raise StepFailed(f"Cloud Build build {build_id} ended {status}: {detail} (log: {log_url})")
        url = builds.service_url(self.gcp, project_id, str(state["region"]), str(state["service"]))
        made = {**_made(state, build), "service_url": url}
        facts = {**(state.get("facts") or {}), "deployment_url": url}
        return StepOutcome(facts=facts, message=f"Deployed to {url}", result=made)


def _made(state: dict[str, Any], build: dict[str, Any]) -> dict[str, Any]:
    return {
        "gcp_project_id": state["project_id"],
        "build_id": state["build_id"],
        "log_url": build.get("logUrl", ""),
        "service": state["service"],
        "region": state["region"],
    }


def _classified(call: Callable[[], T]) -> T:
    """Google's errors sorted like GitHub's: rate limits wait, outages retry, refusals fail the task."""
    try:
        return call()
    except GcpError as error:
        if error.status == 429:
            raise StepRateLimited(str(error), error.retry_after or 60.0) from error
        if error.status in (0, 408) or error.status >= 500:
            raise StepFailed(str(error)) from error
        if error.status in (401, 403):
            raise StepRefused(
                f"{error}. Planter's Google Cloud service account lacks a permission here: it needs Project "
                "Creator on the parent, Billing Account User, Service Usage Admin and Cloud Build Editor"
            ) from error
        if error.status == 409:
            raise StepFailed(str(error)) from error
        raise StepRefused(str(error)) from error
