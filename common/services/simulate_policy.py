"""Where a request's ``simulate`` knobs are accepted (issue 12's guardrails): one rule for every way
a task starts (POST /api/v1/projects, POST /api/v1/tasks, a job and each of its runs)."""

from __future__ import annotations

from dataclasses import dataclass

from common.config import Settings
from common.errors import ValidationFailed
from common.models import Simulation


@dataclass(frozen=True)
class SimulatePolicy:
    allowed: bool  # development, with the simulated step provider
    max_step_seconds: float  # what the local queue's concurrency can absorb

    @classmethod
    def of(cls, settings: Settings) -> SimulatePolicy:
        return cls(
            allowed=settings.step_provider == "simulated" and settings.allow_simulate,
            max_step_seconds=settings.simulate_max_step_seconds,
        )

    def check(self, simulate: Simulation | None, field: str) -> None:
        """422 naming ``field`` (the request's path to the knobs) when they are not accepted here."""
        if simulate is None:
            return
        if not self.allowed:
            raise ValidationFailed(
                "simulate is only accepted in development, with the simulated step provider",
                errors={field: "not accepted by this deployment"},
            )
        if simulate.step_seconds > self.max_step_seconds:
            cap = self.max_step_seconds
            raise ValidationFailed(
                f"simulate.step_seconds is capped at {cap:g} in this deployment",
                errors={f"{field}.step_seconds": f"at most {cap:g}"},
            )
