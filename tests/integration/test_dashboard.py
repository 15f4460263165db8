"""The dashboard on a real PostgreSQL: figures from rows inserted with explicit timestamps.

"Now" is never frozen: HTTP tests place rows relative to the database's now(); the tests of
day, week and DST boundaries on fixed dates call the service with an explicit ``at``.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from common import pipeline
from common.models import TimeSeriesQuery
from common.queries import dashboard as dq
from common.queries.users import billing_period_start
from common.runtime import Runtime
from common.services import dashboard
from common.services.users import User
from tests.factories import add_step, add_task, add_user

ALICE, BOB = "alice@example.test", "bob@example.test"
ACTIVE_PATH = "/api/v1/dashboard/active-tasks"
METRICS_PATH = "/api/v1/dashboard/metrics"
SERIES_PATH = "/api/v1/dashboard/time-series"
EXPECTED = {s.name: s.expected_seconds for s in pipeline.STEPS}


def completed_task(engine: sa.Engine, user: User, at: datetime, minutes: float = 10) -> uuid.UUID:
    return add_task(engine, user, created=at - timedelta(minutes=minutes), completed=at)


def failed_task(engine: sa.Engine, user: User, at: datetime) -> uuid.UUID:
    return add_task(
        engine, user, status="failed", created=at - timedelta(minutes=5), failed=at, current_step="deploying"
    )


def set_plan(engine: sa.Engine, user: User, tier: str | None, limit: int, ops: int, projects: int = 0) -> None:
    with engine.begin() as conn:
        if tier is not None:
            conn.execute(
                sa.text("INSERT INTO subscriptions (user_id, tier, monthly_operations_limit) VALUES (:u, :t, :l)"),
                {"u": user.id, "t": tier, "l": limit},
            )
        period = billing_period_start(datetime.now(UTC).date())
        previous = billing_period_start(period - timedelta(days=1))
        for start, count in ((period, ops), (previous, 99_999)):  # last month's usage never counts
            conn.execute(
                sa.text(
                    "INSERT INTO usage (user_id, period_start, ai_operations_count, projects_created)"
                    " VALUES (:u, :p, :o, :c)"
                ),
                {"u": user.id, "p": start, "o": count, "c": projects},
            )


def db_now(engine: sa.Engine) -> datetime:
    with engine.connect() as conn:
        now: datetime = conn.execute(sa.text("SELECT now()")).scalar_one()
    return now


def get(client: Any, auth_header: Any, path: str, email: str = ALICE, **params: Any) -> dict[str, Any]:
    response = client.get(path, query_string=params, headers=auth_header(email))
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- day and week boundaries -----------------------------------------------------------------------
@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata", "Australia/Adelaide"])
def test_today_and_this_week_begin_at_the_callers_midnight(
    client: Any, auth_header: Any, engine: sa.Engine, tz: str
) -> None:
    alice = add_user(engine)
    now = db_now(engine)
    local = now.astimezone(ZoneInfo(tz))
    day_start = datetime(local.year, local.month, local.day, tzinfo=ZoneInfo(tz))
    week_start = day_start - timedelta(days=local.weekday())  # wall-clock arithmetic: Monday 00:00 local
    inside_today = day_start.astimezone(UTC) + (now - day_start) / 2  # absolute, not wall-clock, time
    minute = timedelta(minutes=1)
    completed_task(engine, alice, inside_today)
    completed_task(engine, alice, day_start - minute)  # yesterday: this week unless today is Monday
    completed_task(engine, alice, week_start - timedelta(days=2, minutes=1))  # last week, before yesterday
    failed_task(engine, alice, inside_today)
    failed_task(engine, alice, week_start - minute)

    active = get(client, auth_header, ACTIVE_PATH, tz=tz)
    assert (active["total_completed_today"], active["total_failed_today"]) == (1, 1)
    health = get(client, auth_header, METRICS_PATH, tz=tz)["project_health"]
    assert health["tasks_completed_today"] == 1
    assert health["tasks_completed_this_week"] == (1 if day_start == week_start else 2)
    assert health["tasks_failed_this_week"] == 1

    daily = get(client, auth_header, SERIES_PATH, metric="tasks_completed", period="daily", days=2, tz=tz)
    assert [parse(p["timestamp"]) for p in daily["data_points"]] == [day_start - timedelta(days=1), day_start]
    assert [p["value"] for p in daily["data_points"]] == [1, 1]
    weekly = get(client, auth_header, SERIES_PATH, metric="tasks_failed", period="weekly", days=8, tz=tz)
    assert [parse(p["timestamp"]) for p in weekly["data_points"]] == [week_start - timedelta(days=7), week_start]
    assert [p["value"] for p in weekly["data_points"]] == [1, 1]


def test_the_same_instant_is_today_in_one_zone_and_yesterday_in_another(engine: sa.Engine, runtime: Runtime) -> None:
    alice = add_user(engine)
    at = utc("2026-11-02T12:00:00")  # Monday: 17:30 in Kolkata, 07:00 in New York
    completed_task(engine, alice, utc("2026-11-01T19:00:00"))  # Mon 00:30 in Kolkata, Sun 14:00 in New York
    kolkata = dashboard.metrics(runtime, alice, "Asia/Kolkata", at=at).project_health
    new_york = dashboard.metrics(runtime, alice, "America/New_York", at=at).project_health
    assert (kolkata.tasks_completed_today, kolkata.tasks_completed_this_week) == (1, 1)
    assert (new_york.tasks_completed_today, new_york.tasks_completed_this_week) == (0, 0)


def series(
    runtime: Runtime, user: User, tz: str, metric: str, period: str, days: int, at: datetime
) -> list[tuple[datetime, float]]:
    query = TimeSeriesQuery(metric=metric, period=period, days=days, tz=tz)
    return [(parse(p.timestamp), p.value) for p in dashboard.time_series(runtime, user, query, at=at).data_points]


def test_daily_buckets_across_the_new_york_fall_back(engine: sa.Engine, runtime: Runtime) -> None:
    # 2026-11-01 02:00 EDT became 01:00 EST: Sunday the 1st was 25 hours long.
    alice = add_user(engine)
    for created in ("2026-11-01T03:30", "2026-11-01T05:30", "2026-11-01T06:30", "2026-11-02T04:30", "2026-11-02T05:30"):
        add_task(engine, alice, status="creating_org", created=utc(created), current_step="creating_org")
    at = utc("2026-11-02T17:00:00")
    assert series(runtime, alice, "America/New_York", "tasks_created", "daily", 3, at) == [
        (utc("2026-10-31T04:00:00"), 1),  # Sat 23:30 EDT
        (utc("2026-11-01T04:00:00"), 3),  # 01:30 EDT, 01:30 EST, 23:30 EST
        (utc("2026-11-02T05:00:00"), 1),  # Mon 00:30 EST
    ]
    hourly = series(runtime, alice, "America/New_York", "tasks_created", "hourly", 1, utc("2026-11-01T12:10:00"))
    assert len(hourly) == 24
    assert all(b[0] - a[0] == timedelta(hours=1) for a, b in itertools.pairwise(hourly))
    by_hour = dict(hourly)
    assert (by_hour[utc("2026-11-01T05:00:00")], by_hour[utc("2026-11-01T06:00:00")]) == (1, 1)  # both 01:00s
    weekly = series(runtime, alice, "America/New_York", "tasks_created", "weekly", 14, utc("2026-11-04T17:00:00"))
    assert weekly == [
        (utc("2026-10-19T04:00:00"), 0),
        (utc("2026-10-26T04:00:00"), 4),  # Mon Oct 26 EDT .. Sun Nov 1 23:30 EST
        (utc("2026-11-02T05:00:00"), 1),  # Mon Nov 2 00:00 EST
    ]


def test_today_across_the_new_york_fall_back(engine: sa.Engine, runtime: Runtime) -> None:
    alice = add_user(engine)
    completed_task(engine, alice, utc("2026-11-02T04:30:00"))  # Sunday 23:30 EST (would be Monday in EDT)
    completed_task(engine, alice, utc("2026-11-02T05:30:00"))  # Monday 00:30 EST
    at = utc("2026-11-02T17:00:00")
    health = dashboard.metrics(runtime, alice, "America/New_York", at=at).project_health
    assert (health.tasks_completed_today, health.tasks_completed_this_week) == (1, 1)
    assert dashboard.active_tasks(runtime, alice, "America/New_York", at=at).total_completed_today == 1


def test_daily_buckets_across_the_new_york_spring_forward(engine: sa.Engine, runtime: Runtime) -> None:
    # 2026-03-08 02:00 EST became 03:00 EDT: Sunday the 8th was 23 hours long.
    alice = add_user(engine)
    completed_task(engine, alice, utc("2026-03-09T03:30:00"))  # Sun 23:30 EDT
    completed_task(engine, alice, utc("2026-03-09T04:30:00"))  # Mon 00:30 EDT
    assert series(runtime, alice, "America/New_York", "tasks_completed", "daily", 2, utc("2026-03-09T16:00:00")) == [
        (utc("2026-03-08T05:00:00"), 1),
        (utc("2026-03-09T04:00:00"), 1),
    ]


def test_half_hour_offsets_and_their_dst_change(engine: sa.Engine, runtime: Runtime) -> None:
    alice = add_user(engine)
    # Kolkata, +05:30 all year: days and hours begin at :30 UTC.
    failed_task(engine, alice, utc("2026-11-01T18:15:00"))  # Nov 1 23:45 IST
    failed_task(engine, alice, utc("2026-11-01T18:45:00"))  # Nov 2 00:15 IST
    assert series(runtime, alice, "Asia/Kolkata", "tasks_failed", "daily", 2, utc("2026-11-02T12:00:00")) == [
        (utc("2026-10-31T18:30:00"), 1),
        (utc("2026-11-01T18:30:00"), 1),
    ]
    hourly = series(runtime, alice, "Asia/Kolkata", "tasks_failed", "hourly", 1, utc("2026-11-02T12:00:00"))
    assert hourly[-1][0] == utc("2026-11-02T11:30:00") and all(t.minute == 30 for t, _ in hourly)
    # Adelaide moved from +09:30 to +10:30 on 2026-10-04 at 02:00.
    completed_task(engine, alice, utc("2026-10-04T13:15:00"))  # Oct 4 23:45 ACDT
    completed_task(engine, alice, utc("2026-10-04T13:45:00"))  # Oct 5 00:15 ACDT
    assert series(runtime, alice, "Australia/Adelaide", "tasks_completed", "daily", 3, utc("2026-10-05T02:00:00")) == [
        (utc("2026-10-02T14:30:00"), 0),
        (utc("2026-10-03T14:30:00"), 1),
        (utc("2026-10-04T13:30:00"), 1),
    ]


# --- time series values ---------------------------------------------------------------------------
def test_time_series_values_units_and_zero_filled_buckets(client: Any, auth_header: Any, engine: sa.Engine) -> None:
    alice, bob = add_user(engine, ALICE), add_user(engine, BOB)
    now = db_now(engine)
    yesterday = now - timedelta(days=1)
    for user, copies in ((alice, 1), (bob, 3)):  # Bob's rows must never show in Alice's figures
        for _ in range(copies):
            completed_task(engine, user, yesterday, minutes=10)
            completed_task(engine, user, yesterday, minutes=20)
            failed_task(engine, user, yesterday)
            task = add_task(engine, user, created=now - timedelta(hours=30), completed=yesterday)
            for step, ops in (("customizing_project", 3), ("creating_issues", 1), ("deploying", 50)):
                status = "failed" if step == "deploying" else "succeeded"  # a failed step meters nothing
                add_step(
                    engine, task, step, status, started=yesterday, finished=yesterday, usage={"ai_operations": ops}
                )
            add_task(
                engine, user, status="creating_org", created=now - timedelta(minutes=1), current_step="creating_org"
            )

    def values(metric: str) -> tuple[str, list[float]]:
        body = get(client, auth_header, SERIES_PATH, metric=metric, period="daily", days=7)
        assert body["metric_name"] == metric and body["period"] == "daily"
        assert len(body["data_points"]) == 7
        return body["unit"], [p["value"] for p in body["data_points"]]

    zeros = [0.0] * 5
    assert values("tasks_completed") == ("tasks", [*zeros, 3, 0])
    assert values("tasks_failed") == ("tasks", [*zeros, 1, 0])
    assert values("success_rate") == ("percent", [*zeros, 75.0, 0])
    assert values("avg_duration_minutes") == ("minutes", [*zeros, round((10 + 20 + 30 * 60 - 24 * 60) / 3, 2), 0])
    assert values("ai_operations") == ("operations", [*zeros, 4, 0])
    unit, created = values("tasks_created")
    assert unit == "tasks" and created[-1] == 1 and sum(created) == 5

    hourly = get(client, auth_header, SERIES_PATH, metric="tasks_created", period="hourly", days=90)
    assert len(hourly["data_points"]) == 90 * 24
    assert sum(p["value"] for p in hourly["data_points"]) == 5


def test_a_user_with_no_tasks_sees_zeros(client: Any, auth_header: Any, engine: sa.Engine) -> None:
    bob = add_user(engine, BOB)
    completed_task(engine, bob, db_now(engine) - timedelta(hours=1))
    assert get(client, auth_header, ACTIVE_PATH) == {
        "active_tasks": [],
        "total_active": 0,
        "total_completed_today": 0,
        "total_failed_today": 0,
    }
    body = get(client, auth_header, METRICS_PATH)
    assert body["user_email"] == ALICE and body["subscription_tier"] == "free"
    assert body["project_health"] == {
        "health_score": 100,
        "tasks_completed_today": 0,
        "tasks_completed_this_week": 0,
        "tasks_failed_this_week": 0,
        "success_rate_30d": None,
        "active_tasks": 0,
        "avg_completion_minutes": None,
        "stuck_tasks": 0,
    }
    assert body["cost_metrics"] == {
        "total_ai_operations": 0,
        "monthly_operations_limit": 100,
        "operations_used_percent": 0.0,
        "estimated_monthly_cost": 0.0,
        "cost_per_operation": 0.05,
        "projects_created_count": 0,
    }
    assert abs(parse(body["timestamp"]) - db_now(engine)) < timedelta(seconds=30)
    for metric in dq.METRICS:
        for period in ("hourly", "daily", "weekly"):
            points = get(client, auth_header, SERIES_PATH, metric=metric, period=period, days=30)["data_points"]
            assert points and all(p["value"] == 0 for p in points)


# --- health -----------------------------------------------------------------------------------
def test_health_falls_as_failures_rise_down_to_a_user_whose_tasks_all_failed(
    client: Any, auth_header: Any, engine: sa.Engine
) -> None:
    now = db_now(engine)
    scores = []
    for failures in range(5):
        user = add_user(engine, f"user{failures}@example.test")
        for i in range(4):
            at = now - timedelta(days=2, minutes=i)
            (failed_task if i < failures else completed_task)(engine, user, at)
        health = get(client, auth_header, METRICS_PATH, email=user.email)["project_health"]
        assert health["success_rate_30d"] == 100 * (4 - failures) / 4
        scores.append(health["health_score"])
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 5
    assert scores[0] == 100 and scores[-1] == 20  # all failed: only the flow term is left

    # A stuck task (active far longer than the pipeline takes) costs the flow term too.
    user = add_user(engine, "user4@example.test")
    add_task(engine, user, status="deploying", created=now - timedelta(hours=2), current_step="deploying", updated=now)
    health = get(client, auth_header, METRICS_PATH, email=user.email)["project_health"]
    assert (health["active_tasks"], health["stuck_tasks"], health["health_score"]) == (1, 1, 0)


def test_health_score_stays_within_bounds() -> None:
    for c30, f30, c7, f7, active, stuck in [
        (0, 0, 0, 0, 0, 0),
        (0, 9, 0, 9, 3, 3),
        (9, 0, 9, 0, 0, 0),
        (1, 1, 0, 1, 4, 1),
    ]:
        score = dashboard.health_score(dashboard.HealthInputs(c30, f30, c7, f7, active, stuck))
        assert 0 <= score <= 100
    base = dashboard.HealthInputs(10, 0, 5, 0, 2, 0)
    worse = dashboard.HealthInputs(10, 3, 5, 3, 2, 0)
    assert dashboard.health_score(worse) < dashboard.health_score(base) == 100


def test_metrics_averages_and_counts(client: Any, auth_header: Any, engine: sa.Engine) -> None:
    alice, bob = add_user(engine, ALICE), add_user(engine, BOB)
    now = db_now(engine)
    completed_task(engine, alice, now - timedelta(days=1), minutes=10)
    completed_task(engine, alice, now - timedelta(days=10), minutes=30)
    completed_task(engine, alice, now - timedelta(days=40), minutes=500)  # outside the 30 days
    add_task(engine, alice, status="cancelled", created=now - timedelta(days=3), cancelled=now - timedelta(days=3))
    add_task(engine, alice, status="deploying", created=now - timedelta(minutes=2), current_step="deploying")
    for _ in range(3):
        failed_task(engine, bob, now - timedelta(days=1))
        add_task(engine, bob, status="deploying", created=now - timedelta(hours=3), current_step="deploying")
    health = get(client, auth_header, METRICS_PATH)["project_health"]
    assert health["success_rate_30d"] == 100.0
    assert health["avg_completion_minutes"] == 20.0
    assert (health["active_tasks"], health["stuck_tasks"], health["health_score"]) == (1, 0, 100)


# --- cost ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tier", "limit", "ops", "percent"),
    [(None, 100, 40, 40.0), ("pro", 1000, 250, 25.0), ("enterprise", -1, 5000, 0.0), ("free", 100, 130, 130.0)],
)
def test_cost_of_this_billing_period(
    client: Any, auth_header: Any, engine: sa.Engine, tier: str | None, limit: int, ops: int, percent: float
) -> None:
    set_plan(engine, add_user(engine, ALICE), tier, limit, ops, projects=7)
    set_plan(engine, add_user(engine, BOB), "pro", 1000, 999, projects=99)
    body = get(client, auth_header, METRICS_PATH)
    assert body["subscription_tier"] == (tier or "free")
    assert body["cost_metrics"] == {
        "total_ai_operations": ops,
        "monthly_operations_limit": limit,
        "operations_used_percent": percent,
        "estimated_monthly_cost": round(ops * 0.05, 2),
        "cost_per_operation": 0.05,
        "projects_created_count": 7,
    }


def test_cost_per_operation_is_configured(client_with: Any, auth_header: Any, engine: sa.Engine) -> None:
    set_plan(engine, add_user(engine), None, 100, 10)
    client = client_with(cost_per_ai_operation=0.125)
    costs = get(client, auth_header, METRICS_PATH)["cost_metrics"]
    assert (costs["cost_per_operation"], costs["estimated_monthly_cost"]) == (0.125, 1.25)


# --- active tasks ---------------------------------------------------------------------------------
def test_active_tasks_with_completion_estimates(client: Any, auth_header: Any, engine: sa.Engine) -> None:
    alice, bob = add_user(engine, ALICE), add_user(engine, BOB)
    now = db_now(engine)
    queued = add_task(
        engine, alice, status="initializing", created=now - timedelta(seconds=5), current_step="creating_org"
    )
    customizing = add_task(
        engine,
        alice,
        status="customizing_project",
        created=now - timedelta(minutes=2),
        current_step="customizing_project",
    )
    add_step(engine, customizing, "customizing_project", "running", started=now - timedelta(seconds=30))
    late = add_task(engine, alice, status="deploying", created=now - timedelta(minutes=20), current_step="deploying")
    add_step(engine, late, "deploying", "running", started=now - timedelta(minutes=15))
    completed_task(engine, alice, now - timedelta(minutes=1))
    add_task(engine, bob, status="deploying", created=now - timedelta(minutes=1), current_step="deploying")
    completed_task(engine, bob, now - timedelta(minutes=1))
    failed_task(engine, bob, now - timedelta(minutes=1))

    def eta_offsets() -> dict[uuid.UUID, float]:
        body = get(client, auth_header, ACTIVE_PATH)
        assert (body["total_active"], body["total_completed_today"], body["total_failed_today"]) == (3, 1, 0)
        listed = body["active_tasks"]
        assert [t["task_id"] for t in listed] == [str(queued), str(customizing), str(late)]  # newest first
        assert listed[1]["status"] == "customizing_project" and listed[1]["current_step"] == "customizing_project"
        asked = db_now(engine)
        return {uuid.UUID(t["task_id"]): (parse(t["estimated_completion_at"]) - asked).total_seconds() for t in listed}

    def rest(after: str) -> float:
        return sum(s.expected_seconds for s in pipeline.STEPS[pipeline.POSITION[after] + 1 :])

    # No history: the configured expectations. The current step ends at its start + expectation,
    # or now when it is already late.
    offsets = eta_offsets()
    assert offsets[queued] == pytest.approx(sum(EXPECTED.values()), abs=5)
    assert offsets[customizing] == pytest.approx(
        EXPECTED["customizing_project"] - 30 + rest("customizing_project"), abs=5
    )
    assert offsets[late] == pytest.approx(rest("deploying"), abs=5)

    # With history (anyone's runs: a system-wide statistic): the median of the recent runs.
    for seconds in (100, 200, 300, 5000):
        other = completed_task(engine, bob, now - timedelta(days=1))
        finished = now - timedelta(hours=1, seconds=seconds)
        for step, took in (("customizing_project", seconds), ("creating_issues", 2)):
            add_step(engine, other, step, "succeeded", started=finished - timedelta(seconds=took), finished=finished)
    offsets = eta_offsets()
    median = (200 + 300) / 2
    later = rest("customizing_project") - EXPECTED["creating_issues"] + 2
    assert offsets[customizing] == pytest.approx(median - 30 + later, abs=5)
    assert offsets[late] == pytest.approx(2, abs=5)  # late: now + the median of creating_issues


def test_active_list_is_capped_but_counted(client: Any, auth_header: Any, engine: sa.Engine) -> None:
    alice = add_user(engine)
    now = db_now(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                """
                INSERT INTO tasks (id, user_id, user_email, status, project_name, current_step, created_at)
                SELECT gen_random_uuid(), :u, :e, 'creating_org', 'p' || g, 'creating_org',
                       CAST(:now AS timestamptz) - g * interval '1 s'
                FROM generate_series(1, :n) g
                """
            ),
            {"u": alice.id, "e": alice.email, "now": now, "n": dq.ACTIVE_LIST_LIMIT + 5},
        )
    body = get(client, auth_header, ACTIVE_PATH)
    assert body["total_active"] == dq.ACTIVE_LIST_LIMIT + 5
    assert len(body["active_tasks"]) == dq.ACTIVE_LIST_LIMIT


# --- validation -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"{SERIES_PATH}?period=daily", "metric"),
        (f"{SERIES_PATH}?metric=revenue", "metric"),
        (f"{SERIES_PATH}?metric=tasks_created&period=monthly", "period"),
        (f"{SERIES_PATH}?metric=tasks_created&days=0", "days"),
        (f"{SERIES_PATH}?metric=tasks_created&days=91", "days"),
        (f"{SERIES_PATH}?metric=tasks_created&days=ten", "days"),
        (f"{SERIES_PATH}?metric=tasks_created&tz=Mars/Olympus_Mons", "tz"),
        (f"{ACTIVE_PATH}?tz=Mars/Olympus_Mons", "tz"),
        (f"{METRICS_PATH}?tz=America/New_york", "tz"),
        (f"{METRICS_PATH}?tz=localtime", "tz"),
        (f"{METRICS_PATH}?tz=../../etc/passwd", "tz"),
        (f"{METRICS_PATH}?tz=", "tz"),
        (f"{METRICS_PATH}?tz={'A' * 65}", "tz"),
        (f"{ACTIVE_PATH}?since=yesterday", "since"),
    ],
)
def test_bad_parameters_are_422_problems(client: Any, auth_header: Any, path: str, field: str) -> None:
    response = client.get(path, headers=auth_header())
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 422 and field in body["errors"]


def test_dashboard_needs_a_token(client: Any) -> None:
    for path in (ACTIVE_PATH, METRICS_PATH, f"{SERIES_PATH}?metric=tasks_created"):
        response = client.get(path)
        assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")


# --- how the figures are computed ------------------------------------------------------------------
def test_each_endpoint_is_one_round_trip(wired_client: Any, auth_header: Any, wire: Any) -> None:
    client = wired_client
    # One statement, sent prepared (common.db.prepared): counted on the wire (tests/wire.py).
    series_params: dict[str, Any] = {"metric": "success_rate", "period": "hourly", "days": 90}
    for path, params in ((ACTIVE_PATH, {}), (METRICS_PATH, {}), (SERIES_PATH, series_params)):
        get(client, auth_header, path, tz="Asia/Kolkata", **params)  # the user row, the prepared statement
        with wire.counting() as trips:
            get(client, auth_header, path, tz="Asia/Kolkata", **params)
        assert trips == [1], path


def _all_statements(user: User) -> list[tuple[str, dq.Statement]]:
    found = [
        ("active-tasks", dq.active_tasks_statement(user.id, "UTC")),
        (
            "metrics",
            dq.metrics_statement(
                user.id,
                "UTC",
                period_start=billing_period_start(datetime.now(UTC).date()),
                long_running_seconds=dashboard.LONG_RUNNING_SECONDS,
                default_tier="free",
                default_limit=100,
            ),
        ),
    ]
    for metric in dq.METRICS:
        for period in dq.PERIOD_UNITS:
            statement = dq.time_series_statement(user.id, "UTC", metric=metric, period=period, days=90)
            found.append((f"time-series {metric} {period}", statement))
    return found


def test_every_statement_can_be_served_by_indexes(engine: sa.Engine) -> None:
    # Tiny tables make sequential scans cheapest, so they are priced out here: what remains
    # shows whether each scan of tasks and task_steps has an index that serves it (the benchmark
    # shows the planner choosing them by itself on a million tasks).
    alice = add_user(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
        for name, (sql, params) in _all_statements(alice):
            plan = "\n".join(r[0] for r in conn.execute(sa.text("EXPLAIN " + sql.text), params))
            for table in ("tasks", "task_steps", "task_progress"):
                assert f"Seq Scan on {table}" not in plan, f"{name}:\n{plan}"


# --- against the real pipeline ---------------------------------------------------------------------
def test_a_real_pipeline_shows_up_and_the_ai_series_sums_to_the_meter(
    client: Any, runtime: Runtime, auth_header: Any, engine: sa.Engine
) -> None:
    from common.services import steps

    created = client.post("/api/v1/projects", json={"project_name": "Real One"}, headers=auth_header())
    assert created.status_code == 202, created.get_json()
    task_id = uuid.UUID(created.get_json()["task_id"])
    listed = get(client, auth_header, ACTIVE_PATH)["active_tasks"]
    assert [t["task_id"] for t in listed] == [str(task_id)] and listed[0]["estimated_completion_at"]

    for step in pipeline.STEP_NAMES:
        assert steps.run_step(runtime, task_id, step).outcome == "succeeded"

    active = get(client, auth_header, ACTIVE_PATH)
    assert (active["total_active"], active["total_completed_today"]) == (0, 1)
    metered = get(client, auth_header, METRICS_PATH)["cost_metrics"]
    assert metered["total_ai_operations"] > 0 and metered["projects_created_count"] == 1
    for period in ("hourly", "daily", "weekly"):
        points = get(client, auth_header, SERIES_PATH, metric="ai_operations", period=period, days=1)["data_points"]
        assert sum(p["value"] for p in points) == metered["total_ai_operations"]
    # What the ai_operations series relies on (docs/DASHBOARD.md, "Queries and indexes").
    with engine.connect() as conn:
        assert conn.execute(
            sa.text(
                "SELECT bool_and(t.updated_at >= s.finished_at) FROM tasks t JOIN task_steps s ON s.task_id = t.id"
                " WHERE s.status = 'succeeded'"
            )
        ).scalar_one()


@pytest.mark.parametrize("path", [ACTIVE_PATH, METRICS_PATH])
def test_a_dashboard_read_is_revalidated_by_its_figures(
    client: Any, auth_header: Any, engine: sa.Engine, path: str
) -> None:
    alice = add_user(engine, ALICE)
    first = client.get(path, headers=auth_header())
    tag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, no-cache"
    assert first.mimetype == "application/json" and first.get_json()  # the body sent with its tag
    # The same figures (the metrics' timestamp moves on: it is not one of them): 304, no body.
    again = client.get(path, headers={**auth_header(), "If-None-Match": f"W/{tag}"})
    assert (again.status_code, again.get_data(), again.headers["ETag"]) == (304, b"", tag)
    add_task(engine, alice, status="deploying", created=db_now(engine), current_step="deploying")
    changed = client.get(path, headers={**auth_header(), "If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
