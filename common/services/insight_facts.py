"""Insights in plain words, from the figures SQL computed (common/queries/insights.py).

These are the insights themselves: the AI service only rephrases their titles, descriptions and
recommendations (common/services/insights.py); when it fails and nothing is cached, these are served.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from common.pipeline import STEPS

HOTSPOTS = 3
# What one planted project meters, from the steps' own declarations (the quota reserves the same).
_PROJECT_AI_OPERATIONS = sum(step.ai_operations for step in STEPS)
# A step is "slower than usual" when its median this week is this many times its usual median.
SLOW_FACTOR = 1.5
# ... and at least this many seconds longer: sub-second steps jitter by large factors.
SLOW_MARGIN_SECONDS = 5.0
# The caller's own earlier runs of a step this many or more: their median is the step's "usual".
OWN_BASELINE_RUNS = 3


@dataclass(frozen=True)
class Fact:
    type: str
    title: str
    description: str
    data: dict[str, Any]
    confidence: float
    recommendations: list[str] = field(default_factory=list)


def _pct(part: float, whole: float) -> int:
    return round(100 * part / whole) if whole else 0


def _rate(part: int, whole: int) -> str:
    return f"{_pct(part, whole)}%" if whole else "no tasks"  # a week without tasks has no rate, not 0 %


def failure_hotspots(steps: list[dict[str, Any]]) -> list[Fact]:
    failing = sorted((s for s in steps if s["failed"]), key=lambda s: (-s["failed"], s["name"]))[:HOTSPOTS]
    facts = []
    for s in failing:
        rate = s["failed"] / s["runs"]
        error = f" The last error: {s['last_error']}" if s["last_error"] else ""
        facts.append(
            Fact(
                type="failure_hotspot",
                title=f"Step {s['name']} fails most often",
                description=f"{s['failed']} of {s['runs']} runs of {s['name']} failed in the last 30 days"
                f" ({_pct(s['failed'], s['runs'])}%).{error}",
                data={
                    "step": s["name"],
                    "runs": s["runs"],
                    "failed": s["failed"],
                    "failure_rate": round(rate, 3),
                    "last_error": s["last_error"],
                },
                confidence=round(min(1.0, 0.5 + s["runs"] / 20), 2),
                recommendations=[
                    f"Open your latest failed task and read the error of step {s['name']}.",
                    "Fix the cause it names, then start the project again.",
                ],
            )
        )
    return facts


def slow_steps(steps: list[dict[str, Any]]) -> list[Fact]:
    facts = []
    for s in steps:
        # The caller's own earlier runs (this month, before this week) are the baseline when there
        # are enough of them; otherwise the step's usual median over everyone's recent runs.
        own = s["own_runs"] >= OWN_BASELINE_RUNS and bool(s["own_median"])
        recent, usual = s["median_7d"], s["own_median"] if own else s["usual_median"]
        if recent is None or not usual or recent < SLOW_FACTOR * usual or recent - usual < SLOW_MARGIN_SECONDS:
            continue
        against = f"your usual {usual:.0f} s (your {s['own_runs']} earlier runs)" if own else f"a usual {usual:.0f} s"
        facts.append(
            Fact(
                type="slow_step",
                title=f"Step {s['name']} is slower than usual",
                description=f"This week {s['name']} took {recent:.0f} s at the median, against {against}"
                f" ({recent / usual:.1f} times as long).",
                data={
                    "step": s["name"],
                    "median_seconds_7d": round(recent, 1),
                    "usual_median_seconds": round(usual, 1),
                    "baseline": "own" if own else "everyone",
                },
                confidence=0.7 if own else 0.6,
                recommendations=[
                    f"Look at the progress messages of step {s['name']} in your latest tasks.",
                    "If it keeps growing, check the outside service that step waits for.",
                ],
            )
        )
    return facts


def quota_forecast(row: dict[str, Any], at: datetime, period_start: date) -> list[Fact]:
    limit, used = row["monthly_operations_limit"], row["ai_operations"]
    if limit == -1:
        return []
    days_in_month = calendar.monthrange(period_start.year, period_start.month)[1]
    elapsed_days = max(1.0, (at.date() - period_start).days + at.hour / 24)
    rate = used / elapsed_days
    forecast = round(rate * days_in_month)
    runs_out = ""
    if rate and forecast > limit:
        day = min(days_in_month, int(limit / rate) + 1)
        runs_out = f" At this rate the {limit} operations run out around day {day} of the month."
    return [
        Fact(
            type="quota_forecast",
            title="Quota forecast for this month",
            description=f"{used} of {limit} AI operations used in {elapsed_days:.1f} days ({rate:.1f} a day):"
            f" about {forecast} by the end of the month.{runs_out}",
            data={"used": used, "limit": limit, "per_day": round(rate, 2), "forecast": forecast, "tier": row["tier"]},
            confidence=round(min(0.95, 0.3 + elapsed_days / days_in_month), 2),
            recommendations=[
                "Upgrade your tier before you run out." if forecast > limit else "You are within your quota.",
                f"Each project uses about {_PROJECT_AI_OPERATIONS} AI operations; each assistant reply uses 1.",
            ],
        )
    ]


def weekly_trend(row: dict[str, Any]) -> list[Fact]:
    this, last = row["created_this_week"], row["created_last_week"]
    ok_this, ok_last = row["completed_this_week"], row["completed_last_week"]
    direction = "more" if this > last else "fewer" if this < last else "as many"
    return [
        Fact(
            type="weekly_trend",
            title="This week against last week",
            description=f"{this} tasks this week ({ok_this} completed, {row['failed_this_week']} failed) against"
            f" {last} last week ({ok_last} completed, {row['failed_last_week']} failed): {direction} than before.",
            data={
                k: row[k]
                for k in (
                    "created_this_week",
                    "completed_this_week",
                    "failed_this_week",
                    "created_last_week",
                    "completed_last_week",
                    "failed_last_week",
                )
            },
            confidence=0.9,
            recommendations=[
                f"Success rate this week: {_rate(ok_this, this)}, last week: {_rate(ok_last, last)}.",
                "Ask the assistant why a failed task failed.",
            ],
        )
    ]


def stuck_tasks(row: dict[str, Any]) -> list[Fact]:
    tasks = row["stuck_tasks"]
    if not tasks:
        return []
    names = ", ".join(f"{t['project_name']} ({t['status']}, {t['running_minutes']} min)" for t in tasks[:5])
    return [
        Fact(
            type="stuck_tasks",
            title=f"{len(tasks)} task(s) look stuck",
            description=f"Running far longer than a pipeline usually takes: {names}.",
            data={"tasks": [{**t, "task_id": str(t["task_id"])} for t in tasks[:20]], "count": len(tasks)},
            confidence=0.8,
            recommendations=["Cancel a stuck task and start it again.", "Check the step it is waiting on."],
        )
    ]


def all_facts(row: dict[str, Any], at: datetime, period_start: date) -> list[Fact]:
    """Every insight the figures support, most pressing first."""
    steps = row["steps"]
    return [
        *stuck_tasks(row),
        *failure_hotspots(steps),
        *slow_steps(steps),
        *quota_forecast(row, at, period_start),
        *weekly_trend(row),
    ]
