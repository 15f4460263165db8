"""The local stand-in for GitHub, the AI service and Google Cloud: plausible results, real timing.

Driven by the task's ``simulate`` field: each step takes ``step_seconds`` and ``fail_step`` fails
its first ``failures`` attempts. Attempts are counted durably by the pipeline, so the failures
are deterministic across redeliveries and restarts.
"""

from __future__ import annotations

import hashlib
import time

from common.models import slugify
from common.pipeline import BY_NAME
from common.providers import StepContext, StepFailed, StepOutcome

ISSUES_OPENED = 5


def _gcp_project_id(slug: str, task_id: str) -> str:
    # GCP ids: 6-30 chars, lowercase letters, digits and hyphens, starting with a letter.
    suffix = hashlib.sha256(task_id.encode()).hexdigest()[:6]
    base = "".join(c if c.isalnum() else "-" for c in slug)[:20].strip("-") or "project"
    if not base[0].isalpha():
        base = "p-" + base[:18]
    return f"{base}-{suffix}"


class SimulatedProvider:
    def run(self, ctx: StepContext) -> StepOutcome:
        sim = ctx.payload.get("simulate") or {}
        seconds = float(sim.get("step_seconds") or 0)
        if seconds:
            time.sleep(seconds)
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
        raise StepFailed(f"unknown step {ctx.step}")
