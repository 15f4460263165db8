"""The pipelines, defined in one place: each task type's steps, progress, timeouts, retries.

``STEPS`` is the create-project pipeline; ``TYPE_STEPS`` holds every task type's steps. Step
names are unique across types, so a step name alone says which pipeline it belongs to (the
step handler, the reaper and the queue need nothing else), and one phase order holds for all.
"""

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

# The other task types' pipelines (common/task_types.py describes each type around its steps).
REDEPLOY_STEPS: tuple[StepDef, ...] = (
    StepDef("building_release", 30, "Building a new release", 900, 3, 1, 8, 60),
    StepDef("redeploying", 70, "Deploying the new release", 1800, 3, 1, 8, 240),
)
GENERATE_ISSUES_STEPS: tuple[StepDef, ...] = (
    StepDef("generating_issues", 50, "Writing and opening new issues with AI", 300, 5, 1, 8, 30, ai_operations=1),
)
# Teardown undoes create_project in reverse order: the Google Cloud project, then the repository.
TEARDOWN_STEPS: tuple[StepDef, ...] = (
    StepDef("deleting_gcp_project", 40, "Shutting down the Google Cloud project", 600, 5, 1, 8, 30),
    StepDef("archiving_repository", 80, "Archiving the repository", 120, 5, 1, 8, 5),
)
TYPE_STEPS: dict[str, tuple[StepDef, ...]] = {
    "create_project": STEPS,
    "redeploy": REDEPLOY_STEPS,
    "generate_issues": GENERATE_ISSUES_STEPS,
    "teardown": TEARDOWN_STEPS,
}
TASK_TYPES: tuple[str, ...] = tuple(TYPE_STEPS)
# A task's priority picks the Cloud Tasks queue of its steps (common.config.Settings.queue_names).
PRIORITIES: tuple[str, ...] = ("low", "normal", "high")
ALL_STEPS: tuple[StepDef, ...] = tuple(s for steps in TYPE_STEPS.values() for s in steps)
ALL_STEP_NAMES: tuple[str, ...] = tuple(s.name for s in ALL_STEPS)
assert len(set(ALL_STEP_NAMES)) == len(ALL_STEP_NAMES), "step names must be unique across task types"
# The active statuses. Each type's steps are contiguous and in order, so array_position() on this
# order compares two phases of the same task correctly whatever its type.
PHASES: tuple[str, ...] = ("initializing", *ALL_STEP_NAMES)
BY_NAME = {s.name: s for s in ALL_STEPS}
TYPE_OF_STEP = {s.name: type_name for type_name, steps in TYPE_STEPS.items() for s in steps}
POSITION = {s.name: i for steps in TYPE_STEPS.values() for i, s in enumerate(steps)}

INITIAL_MESSAGE = "Queued: the pipeline is starting"
COMPLETED_MESSAGE = "Your project is ready"
COMPLETED_PERCENT = 100


def next_step(name: str) -> StepDef | None:
    """The step after ``name`` in its type's pipeline, or None when it is the last."""
    steps = TYPE_STEPS[TYPE_OF_STEP[name]]
    i = POSITION[name] + 1
    return steps[i] if i < len(steps) else None


def backoff(step: StepDef, attempts: int) -> float:
    """Seconds to wait before the next attempt after ``attempts`` failed ones."""
    return float(min(step.backoff_seconds * 2 ** max(0, attempts - 1), step.max_backoff_seconds))


def timeout(step: StepDef, override: float | None) -> float:
    """The heartbeat timeout of a step, or the configured override (short in local stacks)."""
    return override if override is not None else step.timeout_seconds
