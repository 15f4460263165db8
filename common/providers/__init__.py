"""What a pipeline step does in the world. The pipeline calls a provider through StepProvider."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from common.config import Settings
    from common.runtime import Clock


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
    # A check of a waiting step: the state the provider returned in HandedOff (empty otherwise).
    handoff: dict[str, Any] = field(default_factory=dict)
    # Set when the run's work is no longer wanted (its task was cancelled, its claim lost): a
    # provider that waits should wait on this and give up when it is set.
    stop: threading.Event = field(default_factory=threading.Event)


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


@dataclass(frozen=True)
class HandedOff:
    """The step's work goes on outside: the step waits, holding no delivery open.

    It ends with a worker's outcome callback, or when ``check`` (called by a delivery scheduled
    ``check_after`` seconds from now, and again as often as it answers HandedOff) reports an
    outcome, or when ``timeout_seconds`` pass without one (then it is retried or failed like any step).
    """

    check_after: float
    state: dict[str, Any] = field(default_factory=dict)  # JSON: given back as StepContext.handoff
    timeout_seconds: float | None = None  # None: the step's own timeout
    # Metered when a worker's callback (not check) reports success: the provider knows what it costs.
    usage_on_success: dict[str, int] = field(default_factory=dict)


class StepProvider(Protocol):
    def run(self, ctx: StepContext) -> StepOutcome | HandedOff:
        """Do the step, or hand it off; raise StepFailed (or anything) to have it retried."""

    def check(self, ctx: StepContext) -> StepOutcome | HandedOff:
        """Has the outside work of a waiting step finished? Its outcome, or HandedOff to check again
        later; raise StepFailed when the outside work failed."""


FACT_COLUMNS = ("org_url", "repo_url", "deployment_url", "gcp_project_id", "project_id")


def build_provider(name: str, settings: Settings, clock: Clock) -> StepProvider:
    """The provider called ``name`` (STEP_PROVIDER), built for these settings."""
    if name == "simulated":
        from common.providers.simulated import SimulatedProvider

        return SimulatedProvider(clock=clock.time)
    if name == "live":
        # Imported here: the live provider's clients are loaded only by the function that runs steps.
        from common.providers.live_setup import build

        return build(settings, clock.time)
    raise ValueError(f"unknown STEP_PROVIDER {name!r}; the available ones are 'live' and 'simulated'")
