"""The dashboard: active tasks, health and cost, time series — one statement per request.

The figures are computed by PostgreSQL (common/queries/dashboard.py); this module validates the
time zone, turns the aggregates into the response models, and holds the health-score formula,
which docs/DASHBOARD.md ("Health score") states; the two must say the same thing.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import exc as sa_exc

from common import pipeline
from common.db import server_error_fields
from common.errors import UnknownTimeZone
from common.models import (
    ActiveTasks,
    CostMetrics,
    DataPoint,
    Metrics,
    ProjectHealth,
    TimeSeries,
    TimeSeriesQuery,
)
from common.plans import FREE_TIER, TIER_LIMITS
from common.queries import dashboard as q
from common.queries import users as user_q
from common.services.users import User

if TYPE_CHECKING:
    from common.runtime import Runtime

T = TypeVar("T")

UNITS = {
    "tasks_created": "tasks",
    "tasks_completed": "tasks",
    "tasks_failed": "tasks",
    "success_rate": "percent",
    "avg_duration_minutes": "minutes",
    "ai_operations": "operations",
}

# An active task is "stuck or long-running" once it has been active this many times the time the
# whole pipeline is expected to take (sum of StepDef.expected_seconds).
LONG_RUNNING_FACTOR = 3
LONG_RUNNING_SECONDS = LONG_RUNNING_FACTOR * sum(s.expected_seconds for s in pipeline.STEPS)

# Health score weights (docs/DASHBOARD.md, "Health score").
W_SUCCESS_30D, W_SUCCESS_7D, W_FLOW = 50, 30, 20

_ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")
# Files of the zoneinfo directory that are not zones PostgreSQL accepts.
_NOT_ZONES = {"localtime", "posixrules", "Factory"}


def check_zone(tz: str) -> str:
    """The IANA zone name, or UnknownTimeZone."""
    if not _ZONE_NAME.match(tz) or tz in _NOT_ZONES:
        raise UnknownTimeZone(tz)
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise UnknownTimeZone(tz) from None
    return tz


def _unknown_zone(error: sa_exc.DBAPIError) -> bool:
    # The last line of defence when PostgreSQL's zone database lacks a zone Python knows.
    fields = server_error_fields(error)
    return fields.get("C") == "22023" and "time zone" in fields.get("M", "")


def _read(zone: str, work: Callable[[], T]) -> T:
    try:
        return work()
    except sa_exc.DBAPIError as error:
        if _unknown_zone(error):
            raise UnknownTimeZone(zone) from None
        raise


@dataclass(frozen=True)
class HealthInputs:
    completed_30d: int
    failed_30d: int
    completed_7d: int
    failed_7d: int
    active: int
    stuck: int


def _rate(completed: int, failed: int) -> float | None:
    finished = completed + failed
    return completed / finished if finished else None


def health_score(h: HealthInputs) -> int:
    """The 0-100 health score: the formula of docs/DASHBOARD.md, "Health score" (stated there only)."""
    s30 = _rate(h.completed_30d, h.failed_30d)
    s7 = _rate(h.completed_7d, h.failed_7d)
    flow = 1 - min(h.stuck, h.active) / h.active if h.active else 1.0
    score = W_SUCCESS_30D * (1.0 if s30 is None else s30) + W_SUCCESS_7D * (1.0 if s7 is None else s7) + W_FLOW * flow
    return max(0, min(100, round(score)))


def active_tasks(rt: Runtime, user: User, tz: str, *, at: datetime | None = None) -> ActiveTasks:
    """The caller's active tasks with completion estimates, and today's totals in ``tz``."""
    zone = check_zone(tz)
    row = _read(zone, lambda: q.active_tasks(rt.db.prepared, user.id, zone, at))
    # One validation of the whole list (pydantic-core), not one model built per task; the ids
    # come as JSON strings.
    return ActiveTasks.model_validate(
        {
            "active_tasks": row["active_tasks"],
            "total_active": row["total_active"],
            "total_completed_today": row["total_completed_today"],
            "total_failed_today": row["total_failed_today"],
        }
    )


def metrics(rt: Runtime, user: User, tz: str, *, at: datetime | None = None, task_type: str | None = None) -> Metrics:
    """Project health (of tasks of ``task_type``, or all) and this billing period's cost figures."""
    zone = check_zone(tz)
    settings = rt.settings
    period_start = user_q.billing_period_start((at or rt.clock.now()).astimezone(UTC).date())

    def work() -> dict[str, Any]:
        return q.metrics(
            rt.db.prepared,
            user.id,
            zone,
            period_start=period_start,
            long_running_seconds=LONG_RUNNING_SECONDS,
            default_tier=FREE_TIER,
            default_limit=TIER_LIMITS[FREE_TIER],
            at=at,
            task_type=task_type,
        )

    row = _read(zone, work)
    inputs = HealthInputs(
        completed_30d=row["completed_30d"],
        failed_30d=row["failed_30d"],
        completed_7d=row["completed_7d"],
        failed_7d=row["failed_7d"],
        active=row["active"],
        stuck=row["stuck"],
    )
    success = _rate(inputs.completed_30d, inputs.failed_30d)
    avg_minutes = row["avg_minutes_30d"]
    health = ProjectHealth(
        health_score=health_score(inputs),
        tasks_completed_today=row["completed_today"],
        tasks_completed_this_week=row["completed_this_week"],
        tasks_failed_this_week=row["failed_this_week"],
        success_rate_30d=None if success is None else round(100 * success, 1),
        active_tasks=inputs.active,
        avg_completion_minutes=None if avg_minutes is None else round(float(avg_minutes), 2),
        stuck_tasks=inputs.stuck,
    )
    limit, used = row["monthly_operations_limit"], row["ai_operations"]
    if limit == -1:
        percent = 0.0  # unlimited
    elif limit == 0:
        percent = 100.0 if used else 0.0
    else:
        percent = round(100 * used / limit, 1)
    price = settings.cost_per_ai_operation
    cost = CostMetrics(
        total_ai_operations=used,
        monthly_operations_limit=limit,
        operations_used_percent=percent,
        estimated_monthly_cost=round(used * price, 2),
        cost_per_operation=price,
        projects_created_count=row["projects_created"],
    )
    return Metrics(
        user_email=user.email,
        subscription_tier=row["tier"],
        project_health=health,
        cost_metrics=cost,
        timestamp=row["timestamp"],
    )


def time_series(rt: Runtime, user: User, query: TimeSeriesQuery, *, at: datetime | None = None) -> TimeSeries:
    """One point per hour, day or week of the last ``days`` days in ``tz``; empty buckets are 0."""
    zone = check_zone(query.tz)
    rows = _read(
        zone,
        lambda: q.time_series(
            rt.db.prepared,
            user.id,
            zone,
            metric=query.metric,
            period=query.period,
            days=query.days,
            at=at,
            task_type=query.type,
        ),
    )
    return TimeSeries(
        metric_name=query.metric,
        period=query.period,
        unit=UNITS[query.metric],
        data_points=[DataPoint(timestamp=r["timestamp"], value=round(float(r["value"]), 2)) for r in rows],
    )
