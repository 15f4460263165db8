"""The dashboard's read side: one statement per endpoint, aggregates computed by PostgreSQL.

Every statement is scoped by ``user_id`` and bounded by time, and each of its scans is served by
an index made for it (docs/DASHBOARD.md lists which). Nothing here loads rows to count them.

Parameters shared by all statements:
- ``:user_id`` the caller;
- ``:tz`` an IANA zone already validated by the service: where days and weeks begin;
- ``:at`` the instant the figures are for; None means the database's ``now()`` (tests pin it);
- ``:task_type`` for the metrics and time series: only tasks of that type, None for all.

Each statement is built by a ``*_statement`` function returning the SQL and its parameters, so
that the benchmark can ``EXPLAIN`` exactly what the endpoints run.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from common.db import Prepared
from common.pipeline import TYPE_STEPS
from common.queries.tasks import TERMINAL_SQL, iso_sql

Statement = tuple[sa.TextClause, dict[str, Any]]

# How many recent successful runs of a step its median duration is taken over.
STEP_HISTORY = 200
# The active-tasks list is capped (newest first); total_active still counts them all.
ACTIVE_LIST_LIMIT = 100

NOW = "coalesce(CAST(:at AS timestamptz), now())"
DAY_START = f"date_trunc('day', {NOW}, :tz)"
WEEK_START = f"date_trunc('week', {NOW}, :tz)"  # ISO weeks: Monday 00:00 in the caller's zone
ACTIVE = f"t.status NOT IN {TERMINAL_SQL}"  # the predicate of ix_tasks_user_active, verbatim
# Metrics and time series count the tasks of one type when asked (None: all). The usage figures
# (AI operations, projects created) are per user and billing period, whatever the type.
TYPE_MATCH = "(CAST(:task_type AS text) IS NULL OR t.type = CAST(:task_type AS text))"

# The pipeline as a relation (constants from common.pipeline, not user input).
# Every task type's steps, positions counted within the type (common.pipeline.TYPE_STEPS).
_PIPELINE_VALUES = ", ".join(
    f"('{s.name}', '{task_type}', {i}, {float(s.expected_seconds)})"
    for task_type, steps in TYPE_STEPS.items()
    for i, s in enumerate(steps)
)

# Median duration of each step over its last STEP_HISTORY successful runs (all users: a
# system-wide statistic, no one's rows are shown), or the configured expectation without history.
# Each lateral subquery reads ix_task_steps_name_finished from the newest run on, 200 entries.
_STEP_SECONDS = f"""
    pipeline (name, type, position, expected) AS (VALUES {_PIPELINE_VALUES}),
    step_seconds AS MATERIALIZED (
        SELECT p.name, p.type, p.position, coalesce(h.median, p.expected) AS seconds
        FROM pipeline p
        LEFT JOIN LATERAL (
            SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.finished_at - r.started_at))
                   AS median
            FROM (SELECT s.started_at, s.finished_at FROM task_steps s
                  WHERE s.name = p.name AND s.status = 'succeeded' AND s.finished_at IS NOT NULL
                  ORDER BY s.finished_at DESC LIMIT {STEP_HISTORY}) r
        ) h ON true
    )
"""

_ACTIVE_TASKS = f"""
WITH {_STEP_SECONDS},
active AS (
    SELECT t.id, t.project_name, t.status, t.message, t.progress_percent, t.created_at, t.updated_at,
           t.repo_url, t.org_url, t.deployment_url, t.current_step
    FROM tasks t
    WHERE t.user_id = :user_id AND {ACTIVE}
    ORDER BY t.created_at DESC
    LIMIT :list_limit
),
estimated AS (
    -- The current step ends at its start plus its median (never in the past: a step running
    -- late is expected to end now), then each later step takes its median.
    SELECT a.*,
           CASE WHEN cur.name IS NOT NULL THEN
               greatest(coalesce(st.started_at, {NOW}) + make_interval(secs => cur.seconds), {NOW})
               + make_interval(secs => (SELECT coalesce(sum(l.seconds), 0) FROM step_seconds l
                                        WHERE l.type = cur.type AND l.position > cur.position))
           END AS estimated_completion_at
    FROM active a
    LEFT JOIN step_seconds cur ON cur.name = a.current_step
    LEFT JOIN task_steps st ON st.task_id = a.id AND st.name = a.current_step
)
SELECT
    (SELECT count(*) FROM tasks t WHERE t.user_id = :user_id AND {ACTIVE}) AS total_active,
    (SELECT count(*) FROM tasks t
      WHERE t.user_id = :user_id AND t.completed_at >= {DAY_START} AND t.completed_at <= {NOW})
        AS total_completed_today,
    (SELECT count(*) FROM tasks t
      WHERE t.user_id = :user_id AND t.failed_at >= {DAY_START} AND t.failed_at <= {NOW})
        AS total_failed_today,
    (SELECT coalesce(json_agg(json_build_object(
                'task_id', e.id, 'project_name', e.project_name, 'status', e.status, 'message', e.message,
                'progress_percent', e.progress_percent,
                'created_at', {iso_sql("e.created_at")}, 'updated_at', {iso_sql("e.updated_at")},
                'repo_url', e.repo_url, 'org_url', e.org_url, 'deployment_url', e.deployment_url,
                'current_step', e.current_step,
                'estimated_completion_at', {iso_sql("e.estimated_completion_at")})
            ORDER BY e.created_at DESC, e.id DESC), '[]'::json)
     FROM estimated e) AS active_tasks
"""

# Finished tasks of the last 30 days, read once per index with FILTERs for the shorter windows
# (this ISO week began at most 7 days ago, so it lies inside them).
_METRICS = f"""
WITH completed AS (
    SELECT count(*) FILTER (WHERE t.completed_at >= {DAY_START}) AS today,
           count(*) FILTER (WHERE t.completed_at >= {WEEK_START}) AS this_week,
           count(*) FILTER (WHERE t.completed_at > {NOW} - make_interval(days => 7)) AS last_7d,
           count(*) AS last_30d,
           avg(extract(epoch FROM t.completed_at - t.created_at)) / 60 AS avg_minutes_30d
    FROM tasks t
    WHERE t.user_id = :user_id AND t.completed_at > {NOW} - make_interval(days => 30)
      AND t.completed_at <= {NOW}
), failed AS (
    SELECT count(*) FILTER (WHERE t.failed_at >= {WEEK_START}) AS this_week,
           count(*) FILTER (WHERE t.failed_at > {NOW} - make_interval(days => 7)) AS last_7d,
           count(*) AS last_30d
    FROM tasks t
    WHERE t.user_id = :user_id AND t.failed_at > {NOW} - make_interval(days => 30) AND t.failed_at <= {NOW}
), active AS (
    SELECT count(*) AS total,
           count(*) FILTER (WHERE t.created_at < {NOW} - make_interval(secs => :long_running_seconds)) AS stuck
    FROM tasks t
    WHERE t.user_id = :user_id AND {ACTIVE}
)
SELECT completed.today AS completed_today, completed.this_week AS completed_this_week,
       completed.last_7d AS completed_7d, completed.last_30d AS completed_30d,
       completed.avg_minutes_30d,
       failed.this_week AS failed_this_week, failed.last_7d AS failed_7d, failed.last_30d AS failed_30d,
       active.total AS active, active.stuck AS stuck,
       coalesce(s.tier, :default_tier) AS tier,
       coalesce(s.monthly_operations_limit, :default_limit) AS monthly_operations_limit,
       coalesce(u.ai_operations_count, 0) AS ai_operations,
       coalesce(u.projects_created, 0) AS projects_created,
       {iso_sql(NOW)} AS timestamp
FROM completed, failed, active
LEFT JOIN subscriptions s ON s.user_id = :user_id
LEFT JOIN usage u ON u.user_id = :user_id AND u.period_start = :period_start
"""

# --- time series ------------------------------------------------------------------------------
PERIOD_UNITS = {"hourly": "hour", "daily": "day", "weekly": "week"}
_DAYS = "CAST(:days AS int)"
# The window's first local day: today and the days - 1 before it, counted in the caller's zone.
_FIRST_DAY = f"(({DAY_START} AT TIME ZONE :tz) - make_interval(days => {_DAYS} - 1)) AT TIME ZONE :tz"
_FIRST_BUCKET = {
    "hourly": f"date_trunc('hour', {NOW}, :tz) - make_interval(hours => 24 * {_DAYS} - 1)",
    "daily": _FIRST_DAY,
    "weekly": f"date_trunc('week', {_FIRST_DAY}, :tz)",
}

# Per metric: the rows (with their instant ``ts``) and how a bucket's rows become its value.
# ``:first`` is replaced by the window's first bucket; every scan is bounded by it.
_USER_COMPLETED = "SELECT t.completed_at AS ts, t.created_at FROM tasks t WHERE t.user_id = :user_id"
_SOURCES = {
    "tasks_created": (
        "SELECT t.created_at AS ts FROM tasks t WHERE t.user_id = :user_id AND t.created_at >= {first}"
        f" AND t.created_at <= {NOW}",
        "count(*)",
    ),
    "tasks_completed": (
        f"{_USER_COMPLETED} AND t.completed_at >= {{first}} AND t.completed_at <= {NOW}",
        "count(*)",
    ),
    "tasks_failed": (
        "SELECT t.failed_at AS ts FROM tasks t WHERE t.user_id = :user_id AND t.failed_at >= {first}"
        f" AND t.failed_at <= {NOW}",
        "count(*)",
    ),
    "avg_duration_minutes": (
        f"{_USER_COMPLETED} AND t.completed_at >= {{first}} AND t.completed_at <= {NOW}",
        "avg(extract(epoch FROM r.ts - r.created_at)) / 60",
    ),
    "success_rate": (
        "SELECT t.completed_at AS ts, 1 AS ok FROM tasks t WHERE t.user_id = :user_id"
        f" AND t.completed_at >= {{first}} AND t.completed_at <= {NOW}"
        " UNION ALL "
        "SELECT t.failed_at AS ts, 0 AS ok FROM tasks t WHERE t.user_id = :user_id"
        f" AND t.failed_at >= {{first}} AND t.failed_at <= {NOW}",
        "100.0 * sum(r.ok) / count(*)",
    ),
    # There is no per-event usage table: the AI operations a succeeded step metered are kept in
    # its result, and counted at the step's finished_at. A step finishing bumps its task's
    # updated_at in the same transaction, so the user's tasks updated since the window began
    # (ix_tasks_user_updated) hold every such step; the steps are read by primary key.
    "ai_operations": (
        "SELECT s.finished_at AS ts,"
        " CASE WHEN jsonb_typeof(s.result -> 'usage' -> 'ai_operations') = 'number'"
        " THEN (s.result -> 'usage' ->> 'ai_operations')::numeric ELSE 0 END AS ops"
        " FROM tasks t JOIN task_steps s ON s.task_id = t.id"
        " WHERE t.user_id = :user_id AND t.updated_at >= {first}"
        f" AND s.status = 'succeeded' AND s.finished_at >= {{first}} AND s.finished_at <= {NOW}",
        "sum(r.ops)",
    ),
}
METRICS = tuple(_SOURCES)


def _time_series_sql(metric: str, period: str) -> str:
    first = _FIRST_BUCKET[period]
    rows, value = _SOURCES[metric]
    rows = rows.replace("t.user_id = :user_id", f"t.user_id = :user_id AND {TYPE_MATCH}")
    return f"""
WITH buckets AS (
    SELECT b AS start
    FROM generate_series({first}, date_trunc(:unit, {NOW}, :tz), CAST(:step AS interval), :tz) AS b
), filled AS (
    SELECT date_trunc(:unit, r.ts, :tz) AS start, {value} AS value
    FROM ({rows.format(first=f"({first})")}) r
    GROUP BY 1
)
SELECT {iso_sql("b.start")} AS timestamp, coalesce(f.value, 0) AS value
FROM buckets b LEFT JOIN filled f ON f.start = b.start
ORDER BY b.start
"""


_TIME_SERIES = {(m, p): sa.text(_time_series_sql(m, p)) for m in _SOURCES for p in PERIOD_UNITS}
_ACTIVE_TASKS_TEXT = sa.text(_ACTIVE_TASKS)
_METRICS_TEXT = sa.text(_METRICS.replace("t.user_id = :user_id", f"t.user_id = :user_id AND {TYPE_MATCH}"))


# --- statements and their execution ------------------------------------------------------------
# Each read is a named prepared statement of its connection (common.db.prepared): one exchange
# instead of three, and PostgreSQL keeps its plan.
def active_tasks_statement(user_id: uuid.UUID, tz: str, at: datetime | None = None) -> Statement:
    return _ACTIVE_TASKS_TEXT, {"user_id": user_id, "tz": tz, "at": at, "list_limit": ACTIVE_LIST_LIMIT}


def metrics_statement(
    user_id: uuid.UUID,
    tz: str,
    *,
    period_start: date,
    long_running_seconds: float,
    default_tier: str,
    default_limit: int,
    at: datetime | None = None,
    task_type: str | None = None,
) -> Statement:
    params = {
        "task_type": task_type,
        "user_id": user_id,
        "tz": tz,
        "at": at,
        "period_start": period_start,
        "long_running_seconds": float(long_running_seconds),
        "default_tier": default_tier,
        "default_limit": default_limit,
    }
    return _METRICS_TEXT, params


def time_series_statement(
    user_id: uuid.UUID,
    tz: str,
    *,
    metric: str,
    period: str,
    days: int,
    at: datetime | None = None,
    task_type: str | None = None,
) -> Statement:
    unit = PERIOD_UNITS[period]
    params = {"user_id": user_id, "tz": tz, "at": at, "days": days, "unit": unit, "step": f"1 {unit}"}
    params["task_type"] = task_type
    return _TIME_SERIES[(metric, period)], params


def active_tasks(run: Prepared, user_id: uuid.UUID, tz: str, at: datetime | None = None) -> dict[str, Any]:
    """The user's active tasks (newest first, with completion estimates) and today's totals."""
    sql, params = active_tasks_statement(user_id, tz, at)
    (row,) = run(sql.text, params)
    if isinstance(row["active_tasks"], str):
        row["active_tasks"] = json.loads(row["active_tasks"])
    return row


def metrics(run: Prepared, user_id: uuid.UUID, tz: str, **kwargs: Any) -> dict[str, Any]:
    """Counts and averages behind the health and cost figures, with the plan and this period's usage."""
    sql, params = metrics_statement(user_id, tz, **kwargs)
    (row,) = run(sql.text, params)
    return row


def time_series(
    run: Prepared,
    user_id: uuid.UUID,
    tz: str,
    *,
    metric: str,
    period: str,
    days: int,
    at: datetime | None = None,
    task_type: str | None = None,
) -> list[dict[str, Any]]:
    """One row per bucket, oldest first: its start (ISO, UTC) and its value (0 when empty)."""
    sql, params = time_series_statement(
        user_id, tz, metric=metric, period=period, days=days, at=at, task_type=task_type
    )
    return run(sql.text, params)
