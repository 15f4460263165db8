"""The create-project pipeline, defined in one place: steps, progress, timeouts, retries."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepDef:
    name: str
    progress_percent: int  # shown when the step starts
    message: str
    timeout_seconds: float  # no heartbeat for this long → the run is presumed dead
    max_attempts: int
    backoff_seconds: float  # first retry delay; doubles per attempt up to max_backoff_seconds
    max_backoff_seconds: float
    expected_seconds: float  # estimate used before there is history
    # AI operations a run is expected to meter: the quota reserves them for pipelines in flight.
    ai_operations: int = 0


STEPS: tuple[StepDef, ...] = (
    StepDef("creating_org", 10, "Creating the GitHub organization", 60, 5, 1, 8, 5),
    StepDef("forking_template", 25, "Creating the repository from the template", 120, 5, 1, 8, 20),
    StepDef("customizing_project", 40, "Customizing the project with AI", 600, 4, 1, 8, 90, ai_operations=1),
    StepDef("creating_gcp_project", 60, "Creating the Google Cloud project", 600, 5, 1, 8, 60),
    StepDef("deploying", 75, "Deploying the project", 1800, 3, 1, 8, 240),
    StepDef("creating_issues", 90, "Opening the first issues", 300, 5, 1, 8, 15, ai_operations=1),
)
STEP_NAMES: tuple[str, ...] = tuple(s.name for s in STEPS)
PHASES: tuple[str, ...] = ("initializing", *STEP_NAMES)  # the active statuses, in pipeline order
BY_NAME = {s.name: s for s in STEPS}
POSITION = {s.name: i for i, s in enumerate(STEPS)}

INITIAL_MESSAGE = "Queued: the pipeline is starting"
COMPLETED_MESSAGE = "Your project is ready"
COMPLETED_PERCENT = 100


def next_step(name: str) -> StepDef | None:
    """The step after ``name``, or None when it is the last."""
    i = POSITION[name] + 1
    return STEPS[i] if i < len(STEPS) else None


def backoff(step: StepDef, attempts: int) -> float:
    """Seconds to wait before the next attempt after ``attempts`` failed ones."""
    return float(min(step.backoff_seconds * 2 ** max(0, attempts - 1), step.max_backoff_seconds))


def timeout(step: StepDef, override: float | None) -> float:
    """The heartbeat timeout of a step, or the configured override (short in local stacks)."""
    return override if override is not None else step.timeout_seconds
