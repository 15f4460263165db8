"""What each live-provider call costs in time on the local stand-ins: a table per step and per call.

    .venv/bin/python -m dev.standin_timings [pipelines]

Runs the live provider (the real clients: httpx for GitHub, google-genai for Gemini) against the
GitHub and Gemini stand-ins started in this process, for a few pipelines, and prints Markdown.
Figures are the stand-ins' (local git plumbing, no network), not GitHub's or Vertex AI's.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from common.ai import AISettings, GeminiClient
from common.github.access import TokenAccess
from common.pipeline import STEP_NAMES
from common.providers import StepContext, StepOutcome
from common.providers.live import LiveConfig, LiveProvider
from dev.standins.gemini import GeminiStandIn
from dev.standins.github.server import start
from dev.standins.github.templates import PLANTER_ORG, TEMPLATES


class TimedAI:
    def __init__(self, client: GeminiClient) -> None:
        self.client = client
        self.seconds: list[float] = []

    def generate_json(self, prompt: str, schema: dict[str, Any], *, system: str = "") -> dict[str, Any]:
        started = time.monotonic()
        try:
            return self.client.generate_json(prompt, schema, system=system)
        finally:
            self.seconds.append(time.monotonic() - started)


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f} | {max(values) * 1000:.1f}"


def main() -> None:
    pipelines = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    github = start(Path(tempfile.mkdtemp(prefix="planter-timings-")))
    gemini = GeminiStandIn().start()
    ai = TimedAI(GeminiClient(AISettings("gemini-2.5-flash", "planter-local", "us-central1", base_url=gemini.base_url)))
    access = TokenAccess(github.base_url, "local-stand-in-placeholder")
    config = LiveConfig(PLANTER_ORG, tuple(TEMPLATES), "https://github.com/apps/planter/installations/new")
    provider = LiveProvider(config, access, lambda: ai)
    steps: dict[str, list[float]] = defaultdict(list)
    calls: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    try:
        for n in range(pipelines):
            task_id, facts = str(uuid.uuid4()), dict[str, str]()
            for step in STEP_NAMES:
                seen, asked = len(access.calls), len(ai.seconds)
                ctx = StepContext(
                    task_id,
                    step,
                    1,
                    f"Timing Project {n}",
                    "A service that tracks books",
                    "saas",
                    {},
                    dict(facts),
                    lambda: "",
                )
                started = time.monotonic()
                outcome = provider.run(ctx)
                assert isinstance(outcome, StepOutcome)  # no Google Cloud configured here: nothing waits
                steps[step].append(time.monotonic() - started)
                facts.update(outcome.facts)
                for call in access.calls[seen:]:
                    calls[(step, call.method, call.route)].append(call.seconds)
                for seconds in ai.seconds[asked:]:
                    calls[(step, "POST", "Gemini generateContent")].append(seconds)
    finally:
        github.stop()
        gemini.stop()
    print(f"## Live provider on the stand-ins ({pipelines} pipelines; milliseconds)\n")
    print("| step | runs | p50 ms | max ms |\n|---|---|---|---|")
    for step, values in steps.items():
        print(f"| {step} | {len(values)} | {_ms(values)} |")
    print("\n| step | call | count | p50 ms | max ms |\n|---|---|---|---|---|")
    for (step, method, route), values in calls.items():
        print(f"| {step} | {method} {route} | {len(values)} | {_ms(values)} |")
    print("\nThe first Gemini call of a process includes importing google-genai (its max).")


if __name__ == "__main__":
    main()
