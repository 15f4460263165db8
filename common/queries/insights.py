"""The figures behind insights and step analytics, and the per-user insight cache.

One statement each, scoped by ``:user_id`` and bounded by time; ``:at`` is the instant the
figures are for (the service's injected clock). Like common/queries/dashboard.py, each statement
is built by a ``*_statement`` function so that the benchmark can EXPLAIN what the endpoint runs.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from common.queries.dashboard import _STEP_SECONDS, Statement
from common.queries.tasks import TERMINAL_SQL, iso_sql

DURATION = "extract(epoch FROM s.finished_at - s.started_at)"

# Per step of the caller's tasks of one type created in the window: runs that ended, outcomes,
# retries, duration percentiles and share of all steps' time. The tasks come from
# ix_tasks_user_type_created (index-only), their steps from task_steps' primary key.
_STEP_STATS = sa.text(
    f"""
    WITH owned AS (
        SELECT t.id FROM tasks t
        WHERE t.user_id = :user_id AND t.type = :type
          AND t.created_at > CAST(:at AS timestamptz) - make_interval(days => :days)
          AND t.created_at <= CAST(:at AS timestamptz)
    ), runs AS (
        SELECT s.name, s.position, s.status, s.attempts, {DURATION} AS seconds
        FROM owned o JOIN task_steps s ON s.task_id = o.id
        WHERE s.status IN ('succeeded', 'failed') AND s.started_at IS NOT NULL AND s.finished_at IS NOT NULL
    )
    SELECT r.name, min(r.position) AS position, count(*) AS runs,
           count(*) FILTER (WHERE r.status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE r.status = 'failed') AS failed,
           sum(greatest(r.attempts - 1, 0)) AS retries,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.seconds) AS p50_seconds,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY r.seconds) AS p95_seconds,
           coalesce(sum(r.seconds) / nullif(sum(sum(r.seconds)) OVER (), 0), 0) AS share_of_time
    FROM runs r GROUP BY r.name ORDER BY position, r.name
    """
)


def step_stats_statement(user_id: uuid.UUID, task_type: str, days: int, at: datetime) -> Statement:
    return _STEP_STATS, {"user_id": user_id, "type": task_type, "days": days, "at": at}


def step_stats(
    conn: sa.Connection, user_id: uuid.UUID, task_type: str, days: int, at: datetime
) -> list[dict[str, Any]]:
    sql, params = step_stats_statement(user_id, task_type, days, at)
    return [dict(r) for r in conn.execute(sql, params).mappings()]


# The facts insights are made of: per step over 30 days (failures, the last error, this week's
# median against the caller's own earlier median, and the step's usual median over everyone's last
# runs for a caller with too few earlier runs), this week against last,
# active tasks running longer than LONG_RUNNING_SECONDS, and the plan with this month's usage.
_FACTS = sa.text(
    f"""
    WITH {_STEP_SECONDS},
    recent AS (
        SELECT t.id, t.status, t.created_at FROM tasks t
        WHERE t.user_id = :user_id AND t.created_at > CAST(:at AS timestamptz) - interval '30 days'
          AND t.created_at <= CAST(:at AS timestamptz)
    ), per_step AS (
        SELECT s.name, min(s.position) AS position, count(*) AS runs,
               count(*) FILTER (WHERE s.status = 'failed') AS failed,
               (array_agg(s.error ORDER BY s.finished_at DESC) FILTER (WHERE s.status = 'failed'))[1] AS last_error,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY {DURATION})
                   FILTER (WHERE s.status = 'succeeded'
                           AND r.created_at > CAST(:at AS timestamptz) - interval '7 days') AS median_7d,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY {DURATION})
                   FILTER (WHERE s.status = 'succeeded'
                           AND r.created_at <= CAST(:at AS timestamptz) - interval '7 days') AS own_median,
               count(*) FILTER (WHERE s.status = 'succeeded'
                                AND r.created_at <= CAST(:at AS timestamptz) - interval '7 days') AS own_runs
        FROM recent r JOIN task_steps s ON s.task_id = r.id
        WHERE s.status IN ('succeeded', 'failed') AND s.started_at IS NOT NULL AND s.finished_at IS NOT NULL
        GROUP BY s.name
    ), weeks AS (
        SELECT count(*) FILTER (WHERE w.this_week) AS created_this_week,
               count(*) FILTER (WHERE w.this_week AND w.status = 'completed') AS completed_this_week,
               count(*) FILTER (WHERE w.this_week AND w.status = 'failed') AS failed_this_week,
               count(*) FILTER (WHERE NOT w.this_week) AS created_last_week,
               count(*) FILTER (WHERE NOT w.this_week AND w.status = 'completed') AS completed_last_week,
               count(*) FILTER (WHERE NOT w.this_week AND w.status = 'failed') AS failed_last_week
        FROM (SELECT r.status, r.created_at > CAST(:at AS timestamptz) - interval '7 days' AS this_week
              FROM recent r WHERE r.created_at > CAST(:at AS timestamptz) - interval '14 days') w
    ), stuck AS (
        SELECT coalesce(json_agg(json_build_object(
                   'task_id', t.id, 'project_name', t.project_name, 'status', t.status,
                   'running_minutes', round(extract(epoch FROM CAST(:at AS timestamptz) - t.created_at) / 60))
                   ORDER BY t.created_at), '[]'::json) AS tasks
        FROM tasks t
        WHERE t.user_id = :user_id AND t.status NOT IN {TERMINAL_SQL}
          AND t.created_at < CAST(:at AS timestamptz) - make_interval(secs => :long_running_seconds)
    )
    SELECT (SELECT coalesce(json_agg(json_build_object(
                'name', p.name, 'runs', p.runs, 'failed', p.failed, 'last_error', p.last_error,
                'median_7d', p.median_7d, 'own_median', p.own_median, 'own_runs', p.own_runs,
                'usual_median', ss.seconds) ORDER BY p.position), '[]'::json)
            FROM per_step p LEFT JOIN step_seconds ss ON ss.name = p.name) AS steps,
           weeks.*, stuck.tasks AS stuck_tasks,
           coalesce(sub.tier, CAST(:default_tier AS text)) AS tier,
           coalesce(sub.monthly_operations_limit, :default_limit) AS monthly_operations_limit,
           coalesce(u.ai_operations_count, 0) AS ai_operations
    FROM weeks, stuck
    LEFT JOIN subscriptions sub ON sub.user_id = :user_id
    LEFT JOIN usage u ON u.user_id = :user_id AND u.period_start = :period_start
    """
)


def facts(
    conn: sa.Connection,
    user_id: uuid.UUID,
    *,
    at: datetime,
    period_start: date,
    long_running_seconds: float,
    default_tier: str,
    default_limit: int,
) -> dict[str, Any]:
    params = {
        "default_tier": default_tier,
        "user_id": user_id,
        "at": at,
        "period_start": period_start,
        "long_running_seconds": float(long_running_seconds),
        "default_limit": default_limit,
    }
    row = dict(conn.execute(_FACTS, params).mappings().one())
    for key in ("steps", "stuck_tasks"):
        if isinstance(row[key], str):
            row[key] = json.loads(row[key])
    return row


# --- the cache ---------------------------------------------------------------------------------
_CACHED_SET = sa.text(
    f"""
    SELECT id, type, title, description, data, confidence, recommendations, generated_at,
           {iso_sql("generated_at")} AS generated_at_iso
    FROM dashboard_insights WHERE user_id = :user_id ORDER BY position
    """
)
_DELETE_SET = sa.text("DELETE FROM dashboard_insights WHERE user_id = :user_id")
_INSERT = sa.text(
    """
    INSERT INTO dashboard_insights (id, user_id, position, type, title, description, data, confidence,
                                    recommendations, generated_at)
    VALUES (:id, :user_id, :position, :type, :title, :description, CAST(:data AS jsonb), :confidence,
            CAST(:recommendations AS jsonb), :generated_at)
    """
)
_TRY_LOCK = sa.text("SELECT pg_try_advisory_xact_lock(hashtextextended(:k, 0))")


def cached_set(conn: sa.Connection, user_id: uuid.UUID) -> list[dict[str, Any]]:
    """The user's stored insights in order (all of one generation), or [] when there are none."""
    rows = [dict(r) for r in conn.execute(_CACHED_SET, {"user_id": user_id}).mappings()]
    for row in rows:
        for key in ("data", "recommendations"):
            if isinstance(row[key], str):
                row[key] = json.loads(row[key])
    return rows


def replace_set(conn: sa.Connection, user_id: uuid.UUID, insights: list[dict[str, Any]], at: datetime) -> None:
    conn.execute(_DELETE_SET, {"user_id": user_id})
    for position, insight in enumerate(insights):
        conn.execute(
            _INSERT,
            {
                "id": insight["id"],
                "user_id": user_id,
                "position": position,
                "type": insight["type"],
                "title": insight["title"],
                "description": insight["description"],
                "data": json.dumps(insight["data"]),
                "confidence": insight["confidence"],
                "recommendations": json.dumps(insight["recommendations"]),
                "generated_at": at,
            },
        )


def try_generation_lock(conn: sa.Connection, user_id: uuid.UUID) -> bool:
    """Take this user's insight-generation lock for the transaction, without waiting; False if held."""
    return bool(conn.execute(_TRY_LOCK, {"k": f"insights:{user_id}"}).scalar_one())
