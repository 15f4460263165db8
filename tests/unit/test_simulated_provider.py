"""The simulated provider: short steps inline, long ones handed off and found done by check()."""

from __future__ import annotations

from typing import Any

import pytest

from common.providers import HandedOff, StepContext, StepFailed, StepOutcome
from common.providers.simulated import INLINE_SECONDS, SimulatedProvider


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def context(
    step: str = "creating_org", attempt: int = 1, handoff: dict[str, Any] | None = None, **sim: Any
) -> StepContext:
    return StepContext(
        task_id="00000000-0000-0000-0000-000000000001",
        step=step,
        attempt=attempt,
        project_name="Sim App",
        project_description="",
        mode="saas",
        payload={"simulate": sim},
        facts={},
        callback_token=lambda: "token",
        handoff=handoff or {},
    )


def test_a_long_step_is_handed_off_and_checked_until_its_time_has_passed() -> None:
    clock = Clock()
    provider = SimulatedProvider(clock=clock)
    handed = provider.run(context(step_seconds=30))
    assert isinstance(handed, HandedOff)
    assert handed.check_after == 30 and handed.state == {"finishes_at": 1030.0}
    assert handed.timeout_seconds is not None and handed.timeout_seconds > 30
    clock.now += 20
    again = provider.check(context(handoff=handed.state, step_seconds=30))
    assert isinstance(again, HandedOff) and again.check_after == pytest.approx(10)
    clock.now += 10
    done = provider.check(context(handoff=handed.state, step_seconds=30))
    assert isinstance(done, StepOutcome) and done.facts["org_url"] == "https://github.com/planter-projects"


def test_a_long_step_fails_at_its_check_as_configured() -> None:
    clock = Clock()
    provider = SimulatedProvider(clock=clock)
    sim: dict[str, Any] = {"step_seconds": 10, "fail_step": "creating_org", "failures": 1}
    handed = provider.run(context(**sim))
    assert isinstance(handed, HandedOff)
    clock.now += 10
    with pytest.raises(StepFailed):
        provider.check(context(handoff=handed.state, **sim))
    assert isinstance(provider.check(context(attempt=2, handoff=handed.state, **sim)), StepOutcome)


def test_a_short_step_runs_inline_and_stops_when_told() -> None:
    provider = SimulatedProvider(clock=Clock())
    assert isinstance(provider.run(context(step_seconds=0.01)), StepOutcome)
    stopped = context(step_seconds=INLINE_SECONDS)
    stopped.stop.set()  # what the heartbeat does when the task is cancelled
    with pytest.raises(StepFailed, match="stopped"):
        provider.run(stopped)
