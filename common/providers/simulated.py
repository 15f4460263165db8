"""The local stand-in for GitHub, the AI service and Google Cloud: plausible results, real timing.

Driven by the task's ``simulate`` field: each step takes ``step_seconds`` and ``fail_step`` fails
its first ``failures`` attempts. Attempts are counted durably by the pipeline, so the failures
are deterministic across redeliveries and restarts.

A step longer than INLINE_SECONDS is not slept through inside its delivery (that would hold one
of the queue's dispatch slots for the whole step): it is handed off as a waiting step whose
outside work "finishes" at start + step_seconds, which the scheduled check then finds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from common.models import slugify
from common.pipeline import BY_NAME
from common.providers import HandedOff, StepContext, StepFailed, StepOutcome

ISSUES_OPENED = 5
# The longest step run inside its delivery; longer ones wait (see the module's docstring).
INLINE_SECONDS = 2.0


def _gcp_project_id(slug: str, task_id: str) -> str:
    # GCP ids: 6-30 chars, lowercase letters, digits and hyphens, starting with a letter.
    suffix = hashlib.sha256(task_id.encode()).hexdigest()[:6]
    base = "".join(c if c.isalnum() else "-" for c in slug)[:20].strip("-") or "project"
    if not base[0].isalpha():
        base = "p-" + base[:18]
    return f"{base}-{suffix}"


class SimulatedProvider:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    def run(self, ctx: StepContext) -> StepOutcome | HandedOff:
        sim = ctx.payload.get("simulate") or {}
        seconds = float(sim.get("step_seconds") or 0)
        if seconds > INLINE_SECONDS:
            return HandedOff(
                check_after=seconds,
                state={"finishes_at": self._clock() + seconds},
                # Time enough for the work and a few late checks; then it counts as lost.
                timeout_seconds=2 * seconds + 30,
            )
        if seconds and ctx.stop.wait(seconds):
            raise StepFailed("stopped: the task was cancelled or the claim lost while the step ran")
        return self._finish(ctx)

    def check(self, ctx: StepContext) -> StepOutcome | HandedOff:
        left = float(ctx.handoff.get("finishes_at", 0)) - self._clock()
        if left > 0:
            return HandedOff(check_after=left, state=ctx.handoff)
        return self._finish(ctx)

    def _finish(self, ctx: StepContext) -> StepOutcome:
        sim = ctx.payload.get("simulate") or {}
        if sim.get("fail_step") == ctx.step and ctx.attempt <= int(sim.get("failures") or 0):
            raise StepFailed(f"simulated failure of {ctx.step} (attempt {ctx.attempt} of {sim['failures']} failing)")
        slug = slugify(ctx.project_name)
        org = f"planter-{slug}"[:39].strip("-.") if ctx.mode == "user" else "planter-projects"
        if ctx.step == "creating_org":
            return StepOutcome(facts={"org_url": f"https://github.com/{org}"})
        if ctx.step == "forking_template":
            repo = f"https://github.com/{org}/{slug}"
            return StepOutcome(facts={"repo_url": repo, "project_id": slug}, usage={"projects_created": 1})
        if ctx.step == "customizing_project":
            return StepOutcome(usage={"ai_operations": BY_NAME[ctx.step].ai_operations})
        if ctx.step == "creating_gcp_project":
            return StepOutcome(facts={"gcp_project_id": _gcp_project_id(slug, ctx.task_id)})
        if ctx.step == "deploying":
            gcp = ctx.facts.get("gcp_project_id") or _gcp_project_id(slug, ctx.task_id)
            return StepOutcome(facts={"deployment_url": f"https://{gcp}.web.app"})
        if ctx.step == "creating_issues":
            return StepOutcome(
                usage={"ai_operations": BY_NAME[ctx.step].ai_operations, "issues_generated": ISSUES_OPENED}
            )
        return _other_types(ctx, slug)


def _other_types(ctx: StepContext, slug: str) -> StepOutcome:
    """The steps of redeploy, generate_issues and teardown, working on what a project task made."""
    digest = hashlib.sha256(f"{ctx.task_id}:{ctx.step}".encode()).hexdigest()
    if ctx.step == "building_release":
        return StepOutcome(facts={"release_id": f"r-{digest[:10]}"}, message="Release built")
    if ctx.step == "redeploying":
        gcp = ctx.facts.get("gcp_project_id") or _gcp_project_id(slug, ctx.task_id)
        return StepOutcome(facts={"deployment_url": f"https://{gcp}.web.app"}, message="New release deployed")
    if ctx.step == "generating_issues":
        repo = ctx.facts.get("repo_url") or f"https://github.com/planter-projects/{slug}"
        count = int(ctx.payload.get("count") or 1)
        first = int(digest[:4], 16) % 1000 + 10
        urls = " ".join(f"{repo}/issues/{first + i}" for i in range(count))
        usage = {"ai_operations": BY_NAME[ctx.step].ai_operations, "issues_generated": count}
        return StepOutcome(facts={"issue_urls": urls}, usage=usage)
    # Teardown: create-if-absent in reverse. What is absent (never made, or already gone) is left
    # alone and reported; deleting a deleted project or archiving an archived repository changes
    # nothing, so a redelivery or a second teardown is a no-op in the world.
    if ctx.step == "deleting_gcp_project":
        state = "deleted" if ctx.facts.get("gcp_project_id") else "absent"
        return StepOutcome(facts={"gcp_project": state}, message=f"Google Cloud project {state}")
    if ctx.step == "archiving_repository":
        state = "archived" if ctx.facts.get("repo_url") else "absent"
        return StepOutcome(facts={"repository": state}, message=f"Repository {state}")
    raise StepFailed(f"unknown step {ctx.step}")
