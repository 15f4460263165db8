"""What a pipeline step does in the world. The pipeline calls a provider through StepProvider."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class StepFailed(Exception):
    """A step attempt failed; the pipeline retries it with backoff until its attempts are spent."""

    def __init__(self, message: str, usage: dict[str, int] | None = None) -> None:
        super().__init__(message)
        # What the failed attempt consumed all the same (AI calls whose answers were unusable).
        self.usage = usage or {}


class StepRateLimited(StepFailed):
    """The provider asked us to come back later: redelivered after ``retry_after`` s, no attempt spent."""

    def __init__(self, message: str, retry_after: float, usage: dict[str, int] | None = None) -> None:
        super().__init__(message, usage)
        self.retry_after = retry_after


class StepRefused(StepFailed):
    """A permanent refusal (App not installed, name taken, template missing): the task fails at once
    with this message, which says what to do; retrying could not help."""


@dataclass(frozen=True)
class StepContext:
    """Everything a provider may use to do one step of one task."""

    task_id: str
    step: str
    attempt: int
    project_name: str
    project_description: str
    mode: str
    payload: dict[str, Any]
    # What earlier steps produced (org_url, repo_url, gcp_project_id, ...).
    facts: dict[str, Any]
    # Mints a token an outside worker can use to post progress for this task only.
    callback_token: Callable[[], str]


@dataclass
class StepOutcome:
    """What a step produced: facts shown on the task, and usage to meter exactly once."""

    facts: dict[str, str] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    message: str | None = None
    # What the step made, shown as the step's `result` (repository, commit, issues...).
    result: dict[str, Any] | None = None
    # True when the step had nothing to do in this deployment (recorded as `skipped`, not succeeded).
    skipped: bool = False


class StepProvider(Protocol):
    def run(self, ctx: StepContext) -> StepOutcome:
        """Do the step; raise StepFailed (or anything) to have it retried."""


FACT_COLUMNS = ("org_url", "repo_url", "deployment_url", "gcp_project_id", "project_id")


def get_provider(name: str) -> StepProvider:
    """The provider configured by STEP_PROVIDER."""
    if name == "simulated":
        from common.providers.simulated import SimulatedProvider

        return SimulatedProvider()
    if name == "live":
        # Imported here: the live provider's clients are loaded only by the function that runs steps.
        from common.config import get_settings
        from common.providers.live_setup import live_provider

        return live_provider(get_settings())
    raise ValueError(f"unknown STEP_PROVIDER {name!r}; the available ones are 'live' and 'simulated'")
