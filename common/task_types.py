"""The task types as data: each type's payload schema, its steps and how its result is built.

The engine (common/services/steps.py) runs any type the same way; the steps themselves are in
common/pipeline.py (TYPE_STEPS), with their progress, timeouts, attempts, backoff and AI operations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from common import pipeline
from common.models import CreateProject, Simulation, StrictModel

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class ProjectTaskPayload(StrictModel):
    project_task_id: str = Field(pattern=UUID_PATTERN, description="The create_project task that planted it.")
    simulate: Simulation | None = None


class RedeployPayload(ProjectTaskPayload):
    """A new build and deploy of a planted project."""


class GenerateIssuesPayload(ProjectTaskPayload):
    count: int = Field(ge=1, le=10, strict=True, description="How many issues to open.")
    focus: str | None = Field(None, min_length=1, max_length=500, description="What the issues should be about.")


class TeardownPayload(ProjectTaskPayload):
    """Shut down the Google Cloud project and archive the repository a project task made."""


# A step's stored result is {"facts": {...}, "usage": {...}}; a type's result is built from them.
StepResults = Mapping[str, Mapping[str, Any]]


def _facts(step_results: StepResults) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for result in step_results.values():
        merged.update(result.get("facts") or {})
    return merged


def _pick(*keys: str) -> Callable[[StepResults], dict[str, Any]]:
    def build(step_results: StepResults) -> dict[str, Any]:
        facts = _facts(step_results)
        return {k: facts[k] for k in keys if facts.get(k) is not None}

    return build


def _issues_result(step_results: StepResults) -> dict[str, Any]:
    facts = _facts(step_results)
    urls = [u for u in str(facts.get("issue_urls") or "").split() if u]
    return {"repo_url": facts.get("repo_url"), "issues_opened": len(urls), "issue_urls": urls}


@dataclass(frozen=True)
class TaskType:
    name: str
    description: str
    payload_model: type[StrictModel]
    steps: tuple[pipeline.StepDef, ...]
    build_result: Callable[[StepResults], dict[str, Any]]
    completed_message: str
    # The states of the target project task this type accepts (None: it takes no project task).
    project_states: tuple[str, ...] | None
    # Whether it needs the project still standing (refused with 409 once a teardown completed or runs).
    needs_standing_project: bool = False

    @property
    def step_names(self) -> list[str]:
        return [s.name for s in self.steps]


TYPES: dict[str, TaskType] = {
    t.name: t
    for t in (
        TaskType(
            name="create_project",
            description="Plant a project: GitHub organization and repository, AI customization, Google Cloud"
            " project, deployment, first issues. POST /api/v1/projects is its shorthand.",
            payload_model=CreateProject,
            steps=pipeline.TYPE_STEPS["create_project"],
            build_result=_pick("org_url", "repo_url", "project_id", "gcp_project_id", "deployment_url"),
            completed_message=pipeline.COMPLETED_MESSAGE,
            project_states=None,
        ),
        TaskType(
            name="redeploy",
            description="A new build and deploy of a planted (completed) project.",
            payload_model=RedeployPayload,
            steps=pipeline.TYPE_STEPS["redeploy"],
            build_result=_pick("release_id", "deployment_url", "gcp_project_id"),
            completed_message="Redeployed",
            project_states=("completed",),
            needs_standing_project=True,
        ),
        TaskType(
            name="generate_issues",
            description="More AI-written issues in a planted (completed) project's repository.",
            payload_model=GenerateIssuesPayload,
            steps=pipeline.TYPE_STEPS["generate_issues"],
            build_result=_issues_result,
            completed_message="New issues opened",
            project_states=("completed",),
            needs_standing_project=True,
        ),
        TaskType(
            name="teardown",
            description="Shut down the Google Cloud project and archive the repository a project task made"
            " (also for a failed or cancelled one); what is already gone is left alone.",
            payload_model=TeardownPayload,
            steps=pipeline.TYPE_STEPS["teardown"],
            build_result=_pick("gcp_project_id", "gcp_project", "repo_url", "repository"),
            completed_message="Torn down",
            project_states=("completed", "failed", "cancelled"),
        ),
    )
}
assert set(TYPES) == set(pipeline.TYPE_STEPS), "every pipeline has a task type and every type a pipeline"


def build_result(task_type: str, step_results: StepResults) -> dict[str, Any]:
    """What a completed task of ``task_type`` made, from its steps' stored results."""
    return TYPES[task_type].build_result(step_results)
