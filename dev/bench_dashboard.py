"""`make bench-dashboard`: the dashboard endpoints at 10,000 and at 1,000,000 tasks, same run.

Fills its own embedded PostgreSQL in SQL (10k tasks of 100 users, then 990k more of 9,900 more),
measures every endpoint over HTTP through the local gateway for a typical user of the first fill
(whose rows are the same in both states, so only the tables' size differs) after each fill, then
both states again with their requests interleaved (a copy of the 10k database: the shared
machine's load falls on both alike; the target is judged on that pair), EXPLAINs every dashboard
statement (no sequential scan of tasks, task_steps or task_progress), and writes the table into
docs/DASHBOARD.md between the bench markers.

    python -m dev.bench_dashboard [--tasks 1000000] [--users 10000] [--first 10000] [--rounds 400]
    python -m dev.bench_dashboard --quick   # a smoke run (20k tasks, ~1 min), prints only
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pathlib
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from common import pipeline
from common.plans import FREE_TIER, TIER_LIMITS
from common.queries import dashboard as dq
from common.queries import insights as iq
from common.queries.users import billing_period_start
from common.services import dashboard as service
from common.timeutil import utcnow
from dev import pg
from dev.bench_report import table
from dev.bench_util import percentile
from dev.stack import ROOT, LocalStack, free_port
from dev.token import user_token

DOCS = ROOT / "docs" / "DASHBOARD.md"
BEGIN, END = "<!-- bench-dashboard:begin -->", "<!-- bench-dashboard:end -->"
EMAIL = "user{}@bench.planter.test"
TZ = "America/New_York"
REFERENCE = "healthz (reference)"
ENDPOINTS: tuple[tuple[str, str], ...] = (
    (REFERENCE, "/healthz"),  # the floor: HTTP, routing and one round trip, no auth, no dashboard
    ("active-tasks", f"/api/v1/dashboard/active-tasks?tz={TZ}"),
    ("metrics", f"/api/v1/dashboard/metrics?tz={TZ}"),
    ("time-series daily 30 d", f"/api/v1/dashboard/time-series?metric=success_rate&period=daily&days=30&tz={TZ}"),
    ("time-series hourly 7 d", f"/api/v1/dashboard/time-series?metric=ai_operations&period=hourly&days=7&tz={TZ}"),
    ("steps 30 d", "/api/v1/dashboard/steps?days=30&type=create_project"),
)
MEASURED_STATEMENTS = frozenset(
    {
        "active-tasks",
        "metrics",
        "time-series success_rate daily 30 d",
        "time-series ai_operations hourly 7 d",
        "steps 30 d",
    }
)
TABLES_NEVER_SCANNED = ("tasks", "task_steps", "task_progress")

# --- the generator -------------------------------------------------------------------------------
_NAMES = "ARRAY[" + ", ".join(f"'{s.name}'" for s in pipeline.STEPS) + "]"
_PERCENTS = "ARRAY[" + ", ".join(str(s.progress_percent) for s in pipeline.STEPS) + "]"
_ATTEMPTS = "ARRAY[" + ", ".join(str(s.max_attempts) for s in pipeline.STEPS) + "]"
# One duration per step: its expectation x 0.5-1.5, and one deploy in ten three times slower.
_DURATIONS = ", ".join(
    f"{s.expected_seconds} * (0.5 + random())"
    + (" * CASE WHEN random() < 0.1 THEN 3 ELSE 1 END" if i == 4 else "")
    + f" AS d{i + 1}"
    for i, s in enumerate(pipeline.STEPS)
)

# Per task: its user, its age (each user's newest task within the last hour, so some are in
# flight; the others over 400 days, denser in recent months), step durations as cumulative offsets
# c[1..7] from creation (c[i] = start of step i, c[7] = end), its fate and the step it reached.
_STAGE = f"""
CREATE UNLOGGED TABLE bench_stage AS
WITH base AS (
    SELECT gen_random_uuid() AS id, u.id AS user_id, u.email, k,
           CASE WHEN k = 1 THEN 3600 * random() ELSE 400 * 86400 * power(random(), 1.5) END AS age,
           random() AS r_fate, 1 + floor(random() * 6)::int AS r_step, 0.2 + random() AS q, {_DURATIONS}
    FROM generate_series(CAST(:first AS int), CAST(:last AS int)) g
    JOIN users u ON u.email = 'user' || g || '@bench.planter.test'
    CROSS JOIN generate_series(1, CAST(:per_user AS int)) k
), timed AS (
    SELECT b.*, now() - make_interval(secs => b.age) AS created_at,
           ARRAY[q, q + d1, q + d1 + d2, q + d1 + d2 + d3, q + d1 + d2 + d3 + d4, q + d1 + d2 + d3 + d4 + d5,
                 q + d1 + d2 + d3 + d4 + d5 + d6] AS c
    FROM base b
), fated AS (
    SELECT t.*,
           CASE WHEN t.age < t.c[7] THEN 'active'
                WHEN t.r_fate < 0.85 THEN 'completed' WHEN t.r_fate < 0.95 THEN 'failed' ELSE 'cancelled' END AS fate
    FROM timed t
)
SELECT id, user_id, email, k, created_at, c, fate,
       -- active: steps started so far (0-6); failed: the failing step; cancelled: the first skipped one
       CASE fate WHEN 'active' THEN (SELECT count(*) FROM unnest(c[1:6]) x WHERE x <= age)::int
                 WHEN 'completed' THEN 7 ELSE r_step END AS kk
FROM fated
"""

_INSERT_TASKS = f"""
INSERT INTO tasks (id, user_id, user_email, status, project_name, project_description, mode, message,
                   progress_percent, current_step, project_id, org_url, repo_url, deployment_url, gcp_project_id,
                   error_message, created_at, updated_at, completed_at, failed_at, cancelled_at, version)
SELECT s.id, s.user_id, s.email,
       CASE s.fate WHEN 'active' THEN CASE WHEN s.kk = 0 THEN 'initializing' ELSE ({_NAMES})[s.kk] END
                   ELSE s.fate END,
       'Project ' || s.k, 'A benchmark project', 'saas',
       CASE s.fate WHEN 'completed' THEN '{pipeline.COMPLETED_MESSAGE}' WHEN 'failed' THEN 'Failed while deploying'
                   WHEN 'cancelled' THEN 'Cancelled by the user' ELSE 'Working' END,
       CASE s.fate WHEN 'completed' THEN 100 WHEN 'cancelled' THEN coalesce(({_PERCENTS})[s.kk - 1], 0)
                   ELSE coalesce(({_PERCENTS})[s.kk], 0) END,
       CASE WHEN s.fate = 'completed' THEN NULL ELSE ({_NAMES})[greatest(s.kk, 1)] END,
       'project-' || s.k,
       CASE WHEN s.kk > 1 THEN 'https://github.com/planter-projects' END,
       CASE WHEN s.kk > 2 THEN 'https://github.com/planter-projects/project-' || s.k END,
       CASE WHEN s.fate = 'completed' THEN 'https://project-' || s.k || '.web.app' END,
       CASE WHEN s.kk > 4 THEN 'project-' || s.k || '-abcdef' END,
       CASE WHEN s.fate = 'failed' THEN ({_NAMES})[s.kk] || ': simulated failure' END,
       s.created_at,
       s.created_at + make_interval(secs => CASE s.fate WHEN 'completed' THEN s.c[7] WHEN 'failed' THEN s.c[s.kk + 1]
                                                        WHEN 'cancelled' THEN s.c[s.kk]
                                                        ELSE coalesce(s.c[s.kk], 0) END),
       CASE WHEN s.fate = 'completed' THEN s.created_at + make_interval(secs => s.c[7]) END,
       CASE WHEN s.fate = 'failed' THEN s.created_at + make_interval(secs => s.c[s.kk + 1]) END,
       CASE WHEN s.fate = 'cancelled' THEN s.created_at + make_interval(secs => s.c[s.kk]) END,
       1 + 2 * least(s.kk, 6)
FROM bench_stage s
ORDER BY s.id
"""

_STEP_STATUS = """
CASE WHEN s.fate = 'completed' OR i < s.kk THEN 'succeeded'
     WHEN i = s.kk THEN CASE s.fate WHEN 'active' THEN 'running' WHEN 'failed' THEN 'failed' ELSE 'skipped' END
     WHEN s.fate = 'active' THEN 'pending' ELSE 'skipped' END
"""

_INSERT_STEPS = f"""
INSERT INTO task_steps (task_id, name, position, status, attempts, max_attempts, generation, started_at, finished_at,
                        heartbeat_at, lease_expires_at, error, result)
SELECT s.id, ({_NAMES})[i], i - 1, st.status,
       CASE st.status WHEN 'failed' THEN ({_ATTEMPTS})[i] WHEN 'succeeded' THEN 1 WHEN 'running' THEN 1 ELSE 0 END,
       ({_ATTEMPTS})[i], 0,
       CASE WHEN st.status IN ('succeeded', 'running', 'failed') THEN s.created_at + make_interval(secs => s.c[i]) END,
       CASE WHEN st.status IN ('succeeded', 'failed') THEN s.created_at + make_interval(secs => s.c[i + 1]) END,
       CASE WHEN st.status = 'running' THEN now() END,
       CASE WHEN st.status = 'running' THEN now() + interval '10 minutes' END,
       CASE WHEN st.status = 'failed' THEN 'simulated failure' END,
       CASE WHEN st.status <> 'succeeded' THEN '{{}}'::jsonb
            WHEN i = 2 THEN '{{"facts": {{"project_id": "p"}}, "usage": {{"projects_created": 1}}}}'::jsonb
            WHEN i = 3 THEN '{{"facts": {{}}, "usage": {{"ai_operations": 3}}}}'::jsonb
            WHEN i = 6 THEN '{{"facts": {{}}, "usage": {{"ai_operations": 1, "issues_generated": 5}}}}'::jsonb
            ELSE '{{"facts": {{}}, "usage": {{}}}}'::jsonb END
FROM bench_stage s
CROSS JOIN generate_series(1, 6) i
CROSS JOIN LATERAL (SELECT {_STEP_STATUS} AS status) st
ORDER BY s.id, i
"""

# The initializing row, one per started step, and the terminal row.
_INSERT_PROGRESS = f"""
INSERT INTO task_progress (task_id, update_id, status, message, progress_percent, repo_url, timestamp)
SELECT s.id, p.update_id, p.status, p.status, p.percent, NULL, p.at
FROM bench_stage s
CROSS JOIN generate_series(0, 7) j
CROSS JOIN LATERAL (
    SELECT CASE WHEN j = 0 THEN 'initializing' WHEN j = 7 THEN s.fate ELSE 'step:' || ({_NAMES})[j] END AS update_id,
           CASE WHEN j = 0 THEN 'initializing' WHEN j = 7 THEN s.fate ELSE ({_NAMES})[j] END AS status,
           CASE WHEN j = 0 THEN 0 WHEN j = 7 THEN CASE s.fate WHEN 'completed' THEN 100
                                                       WHEN 'cancelled' THEN coalesce(({_PERCENTS})[s.kk - 1], 0)
                                                       ELSE ({_PERCENTS})[s.kk] END
                ELSE ({_PERCENTS})[j] END AS percent,
           s.created_at + make_interval(secs => CASE WHEN j = 0 THEN 0 WHEN j < 7 THEN s.c[j]
                                                     WHEN s.fate = 'cancelled' THEN s.c[s.kk]
                                                     ELSE s.c[least(s.kk + 1, 7)] END) AS at
) p
WHERE j = 0
   OR (j BETWEEN 1 AND 6 AND (s.fate = 'completed' OR j < s.kk OR (j = s.kk AND s.fate IN ('active', 'failed'))))
   OR (j = 7 AND s.fate <> 'active')
ORDER BY s.id, j
"""

_INSERT_USAGE = """
INSERT INTO usage (user_id, period_start, ai_operations_count, projects_created, issues_generated)
SELECT t.user_id, date_trunc('month', x.finished_at AT TIME ZONE 'UTC')::date,
       sum(coalesce((x.result -> 'usage' ->> 'ai_operations')::int, 0)),
       sum(coalesce((x.result -> 'usage' ->> 'projects_created')::int, 0)),
       sum(coalesce((x.result -> 'usage' ->> 'issues_generated')::int, 0))
FROM bench_stage t JOIN task_steps x ON x.task_id = t.id
WHERE x.status = 'succeeded' AND x.name IN ('forking_template', 'customizing_project', 'creating_issues')
GROUP BY 1, 2
ON CONFLICT (user_id, period_start) DO UPDATE SET
    ai_operations_count = usage.ai_operations_count + excluded.ai_operations_count,
    projects_created = usage.projects_created + excluded.projects_created,
    issues_generated = usage.issues_generated + excluded.issues_generated
"""

# One user in twenty on enterprise (unlimited), three in twenty on pro, the rest free (no row).
_INSERT_USERS = f"""
INSERT INTO users (email, subject, created_at)
SELECT 'user' || g || '@bench.planter.test', 'bench|' || g, now() - interval '400 days'
FROM generate_series(CAST(:first AS int), CAST(:last AS int)) g;
INSERT INTO subscriptions (user_id, tier, monthly_operations_limit)
SELECT u.id, CASE WHEN mod(g, 20) = 0 THEN 'enterprise' ELSE 'pro' END,
       CASE WHEN mod(g, 20) = 0 THEN {TIER_LIMITS["enterprise"]} ELSE {TIER_LIMITS["pro"]} END
FROM generate_series(CAST(:first AS int), CAST(:last AS int)) g
JOIN users u ON u.email = 'user' || g || '@bench.planter.test'
WHERE mod(g, 20) IN (0, 1, 2, 3)
"""


def log(message: str) -> None:
    print(f"[bench-dashboard] {message}", flush=True)


_BULK_TABLES = ("tasks", "task_steps", "task_progress")
# As pg_restore does, indexes are built after the rows are in (CREATE INDEX sorts once instead of
# inserting row by row): the secondary indexes of the three big tables, and the primary and unique
# keys of the two that no foreign key references. Their definitions are read from the database
# and replayed verbatim, so the schema after a fill is the migrated one.
_SECONDARY_INDEXES = sa.text(
    """
    SELECT i.indexname, i.indexdef FROM pg_indexes i
    WHERE i.schemaname = 'public' AND i.tablename = ANY(CAST(:tables AS text[]))
      AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
    ORDER BY i.indexname
    """
)
_KEYS = sa.text(
    """
    SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
    WHERE c.conrelid IN ('task_steps'::regclass, 'task_progress'::regclass) AND c.contype IN ('p', 'u')
    ORDER BY c.conname
    """
)


def tune_for_loading(engine: sa.Engine) -> None:
    """Fewer checkpoints while loading (a throwaway server; reads are not affected)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ALTER SYSTEM SET max_wal_size = '16GB'"))
        conn.execute(sa.text("ALTER SYSTEM SET checkpoint_timeout = '30min'"))
        conn.execute(sa.text("SELECT pg_reload_conf()"))


def fill(engine: sa.Engine, first_user: int, last_user: int, per_user: int, chunk_users: int) -> float:
    """Users first_user..last_user with per_user tasks each, in chunks; returns the seconds taken."""
    started = time.monotonic()
    with engine.begin() as conn:
        for statement in _INSERT_USERS.split(";"):
            conn.execute(sa.text(statement), {"first": first_user, "last": last_user})
        indexes = [tuple(r) for r in conn.execute(_SECONDARY_INDEXES, {"tables": list(_BULK_TABLES)})]
        keys = [tuple(r) for r in conn.execute(_KEYS)]
        for name, _ in indexes:
            conn.execute(sa.text(f'DROP INDEX "{name}"'))
        for table, name, _ in keys:
            conn.execute(sa.text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    for low in range(first_user, last_user + 1, chunk_users):
        high = min(last_user, low + chunk_users - 1)
        t0 = time.monotonic()
        with engine.begin() as conn:
            conn.execute(sa.text("SET LOCAL synchronous_commit = off"))
            conn.execute(sa.text("SET LOCAL max_parallel_workers_per_gather = 0"))
            conn.execute(sa.text("SET LOCAL work_mem = '256MB'"))
            # The generator writes consistent rows: skip the per-row foreign-key triggers.
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            conn.execute(sa.text(_STAGE), {"first": low, "last": high, "per_user": per_user})
            conn.execute(sa.text("ANALYZE bench_stage"))
            for statement in (_INSERT_TASKS, _INSERT_STEPS, _INSERT_PROGRESS, _INSERT_USAGE):
                conn.execute(sa.text(statement))
            conn.execute(sa.text("DROP TABLE bench_stage"))
        log(f"  users {low}-{high}: {(high - low + 1) * per_user:,} tasks in {time.monotonic() - t0:.1f} s")
    t0 = time.monotonic()
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL maintenance_work_mem = '512MB'"))
        conn.execute(sa.text("SET LOCAL max_parallel_maintenance_workers = 0"))
        for table, name, definition in keys:
            conn.execute(sa.text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
        for _, definition in indexes:
            conn.execute(sa.text(definition))
    log(f"  {len(keys)} keys and {len(indexes)} indexes built in {time.monotonic() - t0:.1f} s")
    vacuum(engine)
    return time.monotonic() - started


def vacuum(engine: sa.Engine) -> None:
    """What autovacuum would have done by now: statistics and the visibility map."""
    t0 = time.monotonic()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("SET max_parallel_maintenance_workers = 0"))
        for table in ("users", "subscriptions", "usage", "tasks", "task_steps", "task_progress"):
            conn.execute(sa.text(f"VACUUM (ANALYZE) {table}"))
    log(f"  VACUUM ANALYZE in {time.monotonic() - t0:.1f} s")


def counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("users", "tasks", "task_steps", "task_progress", "usage")
        }


def typical_user(engine: sa.Engine, last_user: int) -> tuple[str, dict[str, Any]]:
    """The first-fill user closest to the median of tasks finished in 30 days, among those with a
    task in flight (so that every part of every endpoint does its work)."""
    sql = sa.text(
        """
        WITH per_user AS (
            SELECT u.email,
                   count(*) FILTER (WHERE t.completed_at > now() - interval '30 days'
                                       OR t.failed_at > now() - interval '30 days') AS finished_30d,
                   count(*) FILTER (WHERE t.status NOT IN ('completed', 'failed', 'cancelled')) AS active,
                   count(*) AS tasks
            FROM users u JOIN tasks t ON t.user_id = u.id
            WHERE u.email = ANY(CAST(:emails AS text[]))
            GROUP BY u.email
        ), median AS (
            SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY finished_30d) AS m FROM per_user
        )
        SELECT p.* FROM per_user p, median
        ORDER BY (p.active > 0) DESC, abs(p.finished_30d - median.m), p.email LIMIT 1
        """
    )
    emails = [EMAIL.format(g) for g in range(1, last_user + 1)]
    with engine.connect() as conn:
        row = dict(conn.execute(sql, {"emails": emails}).mappings().one())
    return row.pop("email"), row


# --- measuring ------------------------------------------------------------------------------------
class Client:
    """One keep-alive connection to a functions process, as a browser would hold."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.headers = port, {"Authorization": f"Bearer {token}"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(self, path: str) -> tuple[float, bytes]:
        """(milliseconds from sending to the last byte, body); reconnects once if the server closed."""
        for attempt in (1, 2):
            t0 = time.perf_counter()
            try:
                self.conn.request("GET", path, headers=self.headers)
                response = self.conn.getresponse()
                body = response.read()
            except (http.client.RemoteDisconnected, ConnectionError, BrokenPipeError):
                self.conn.close()
                if attempt == 2:
                    raise
                continue
            elapsed = (time.perf_counter() - t0) * 1000
            if response.status != 200:
                raise RuntimeError(f"GET {path} answered {response.status}: {body[:300]!r}")
            return elapsed, body
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def measure(ports: dict[str, int], token: str, rounds: int, warmup: int) -> dict[tuple[str, str], list[float]]:
    """Every endpoint on every port, round-robin (the order alternates), after a warm-up."""
    results: dict[tuple[str, str], list[float]] = {(state, name): [] for state in ports for name, _ in ENDPOINTS}
    clients = {state: Client(port, token) for state, port in ports.items()}
    states = list(ports)
    try:
        for r in range(warmup + rounds):
            order = states if r % 2 == 0 else states[::-1]
            for name, path in ENDPOINTS:
                for state in order:
                    elapsed, _ = clients[state].get(path)
                    if r >= warmup:
                        results[(state, name)].append(elapsed)
    finally:
        for client in clients.values():
            client.close()
    return results


def sample_bodies(port: int, token: str) -> dict[str, Any]:
    client = Client(port, token)
    try:
        return {name: json.loads(client.get(path)[1]) for name, path in ENDPOINTS if name != REFERENCE}
    finally:
        client.close()


# --- EXPLAIN --------------------------------------------------------------------------------------
_SCAN = re.compile(
    r"((?:Parallel )?(?:Seq Scan|Index Only Scan|Index Scan|Bitmap Heap Scan|Bitmap Index Scan))"
    r"(?: Backward)?(?: using (\S+))? on (\w+)"
)


def statements(user_id: Any) -> list[tuple[str, dq.Statement]]:
    period_start = billing_period_start(utcnow().date())
    found = [
        ("active-tasks", dq.active_tasks_statement(user_id, TZ)),
        (
            "metrics",
            dq.metrics_statement(
                user_id,
                TZ,
                period_start=period_start,
                long_running_seconds=service.LONG_RUNNING_SECONDS,
                default_tier=FREE_TIER,
                default_limit=TIER_LIMITS[FREE_TIER],
            ),
        ),
    ]
    for metric in dq.METRICS:
        for period in dq.PERIOD_UNITS:
            days = 7 if period == "hourly" else 30
            found.append(
                (
                    f"time-series {metric} {period} {days} d",
                    dq.time_series_statement(user_id, TZ, metric=metric, period=period, days=days),
                )
            )
    found.append(("steps 30 d", iq.step_stats_statement(user_id, "create_project", 30, utcnow())))
    return found


@dataclass
class Explained:
    name: str
    ms: float
    shared_hit: int
    shared_read: int
    scans: list[str]
    seq_scans: list[str]


def explain(engine: sa.Engine, email: str, show: frozenset[str] = frozenset()) -> list[Explained]:
    out = []
    with engine.connect() as conn:
        user_id = conn.execute(sa.text("SELECT id FROM users WHERE email = :e"), {"e": email}).scalar_one()
        for name, (sql, params) in statements(user_id):
            explain_sql = sa.text("EXPLAIN (ANALYZE, BUFFERS) " + sql.text)
            conn.execute(explain_sql, params).all()  # the second run is reported: warm, as the endpoints run
            lines = [r[0] for r in conn.execute(explain_sql, params)]
            if name in show:  # the full plans of the measured requests
                print(f"\n--- {name}\n" + "\n".join(lines))
            text = "\n".join(lines)
            ms = float(re.search(r"Execution Time: ([\d.]+) ms", text).group(1))  # type: ignore[union-attr]
            buffers = next((line for line in lines if "Buffers:" in line), "")
            hit = re.search(r"hit=(\d+)", buffers)
            read = re.search(r"read=(\d+)", buffers)
            scans = []
            for kind, index, table in _SCAN.findall(text):
                scans.append(f"{kind} {index} on {table}" if index else f"{kind} on {table}")
            seq = [
                s
                for s in scans
                if s.startswith(("Seq Scan", "Parallel Seq Scan")) and s.split()[-1] in TABLES_NEVER_SCANNED
            ]
            out.append(
                Explained(
                    name,
                    ms,
                    int(hit.group(1)) if hit else 0,
                    int(read.group(1)) if read else 0,
                    sorted(set(scans)),
                    seq,
                )
            )
    return out


# --- report ---------------------------------------------------------------------------------------
def report(
    sequential: dict[str, dict[tuple[str, str], list[float]]],
    paired: dict[tuple[str, str], list[float]],
    explained: list[Explained],
    explained_10k: dict[str, Explained],
    context: dict[str, Any],
) -> tuple[str, bool]:
    target = 1.2
    rows = []
    ok = True
    for name, _ in ENDPOINTS:
        small, large = paired[("10k", name)], paired[("1M", name)]
        ratio = percentile(large, 99) / percentile(small, 99)
        ok = ok and (ratio <= target or name == REFERENCE)
        s10, s1m = sequential["10k"][("10k", name)], sequential["1M"][("1M", name)]
        rows.append(
            [
                name,
                f"{percentile(s10, 50):.1f} / {percentile(s10, 99):.1f}",
                f"{percentile(s1m, 50):.1f} / {percentile(s1m, 99):.1f}",
                f"{percentile(s1m, 99) / percentile(s10, 99):.2f}",
                f"{percentile(small, 50):.1f} / {percentile(small, 99):.1f}",
                f"{percentile(large, 50):.1f} / {percentile(large, 99):.1f}",
                f"**{ratio:.2f}**",
            ]
        )
    header = (
        "endpoint|10k p50 / p99 ms|1M p50 / p99 ms|p99 ratio|paired 10k p50 / p99|paired 1M p50 / p99|paired p99 ratio"
    )
    latency = "\n".join(table(header, rows))
    seq_free = all(not e.seq_scans for e in explained)
    plan_rows = [
        [
            e.name,
            f"{explained_10k[e.name].ms:.2f}" if e.name in explained_10k else "",
            f"{e.ms:.2f}",
            f"{e.shared_hit}/{e.shared_read}",
            "<br>".join(e.scans),
            "none" if not e.seq_scans else ", ".join(e.seq_scans),
        ]
        for e in explained
    ]
    header = "statement|exec ms 10k|exec ms 1M|1M buffers hit/read|scans at 1M|seq scans (tasks/steps/progress)"
    plans = "\n".join(table(header, plan_rows))
    c = context
    text = f"""Run of {c["when"]} on this machine ({c["cpus"]} cores, shared with other work), PostgreSQL
{c["pg_version"]} (pgserver, default settings), functions-framework serving the local gateway
(gthread), one request at a time on a keep-alive connection, after {c["warmup"]} warm-up rounds:
{c["rounds"]} measured rounds per endpoint right after each fill, {c["paired_rounds"]} in the paired run.
Typical user: `{c["user"]}` ({c["user_stats"]}), `tz={TZ}`.

Rows: first fill {c["counts_10k"]}; full {c["counts_1m"]}. Fill times: first {c["fill_10k"]:.0f} s,
second {c["fill_1m"]:.0f} s; whole run {c["total"] / 60:.0f} min. Machine load (1-minute average) at the end
of each measurement: {c["loads"]}.

"10k" and "1M" are measured right after each fill (sequential); "paired" measures a copy of the
10k database and the 1M database at the same time with interleaved requests, so that the load of
the shared machine falls on both alike. Target: paired p99 ratio ≤ {target}.

{latency}

EXPLAIN (ANALYZE, BUFFERS) for the same user, every dashboard statement, at 10k and at 1M
({"no sequential scan of tasks, task_steps or task_progress" if seq_free else "SEQUENTIAL SCANS FOUND"}):

{plans}
"""
    return text, ok and seq_free


def write_docs(text: str) -> None:
    if not DOCS.exists():
        log(f"{DOCS} is missing; not written")
        return
    doc = DOCS.read_text()
    if BEGIN not in doc or END not in doc:
        doc = doc.rstrip() + f"\n\n{BEGIN}\n{END}\n"
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOCS.write_text(f"{head}{BEGIN}\n{text.strip()}\n{END}{tail}")
    log(f"written into {DOCS.relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--first", type=int, default=10_000, help="tasks of the first fill")
    parser.add_argument("--rounds", type=int, default=400, help="measured rounds right after each fill")
    parser.add_argument("--paired-rounds", type=int, default=2000, help="measured rounds of the paired run")
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--chunk-users", type=int, default=1000)
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/DASHBOARD.md alone")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20k tasks, few rounds, docs untouched")
    args = parser.parse_args()
    if args.quick:
        quick = {"tasks": 20_000, "users": 200, "first": 2_000, "rounds": 20, "paired_rounds": 40, "warmup": 5}
        vars(args).update(quick, chunk_users=100, no_docs=True)
    per_user = args.tasks // args.users
    first_users = args.first // per_user

    run_started = time.monotonic()
    data_dir = pathlib.Path(tempfile.mkdtemp(prefix="pd", dir="/tmp"))  # short: unix socket path limit
    stack = LocalStack(data_dir=data_dir, port=free_port(), quiet=True)
    copy: LocalStack | None = None
    cleanups: list[Callable[[], None]] = []
    try:
        stack.start_postgres()
        engine = sa.create_engine(stack.database_url, pool_size=1, max_overflow=0)
        cleanups.append(engine.dispose)
        tune_for_loading(engine)
        with engine.connect() as conn:
            pg_version = conn.execute(sa.text("SHOW server_version")).scalar_one()

        log(f"first fill: {first_users * per_user:,} tasks of {first_users} users")
        fill_10k = fill(engine, 1, first_users, per_user, args.chunk_users)
        counts_10k = counts(engine)
        email, stats = typical_user(engine, first_users)
        token = user_token(email)
        log(f"typical user {email}: {stats}")
        engine.dispose()
        pg.create_database(pg.url(stack.server), "planter_10k", template="planter")

        stack.start_functions()
        log(f"measuring at 10k through {stack.base_url}")
        sequential = {"10k": measure({"10k": stack.port}, token, args.rounds, args.warmup)}
        loads = {"10k": os.getloadavg()[0]}
        bodies_10k = sample_bodies(stack.port, token)

        log(f"second fill: {(args.users - first_users) * per_user:,} tasks of {args.users - first_users} users")
        fill_1m = fill(engine, first_users + 1, args.users, per_user, args.chunk_users)
        counts_1m = counts(engine)
        log(f"measuring at 1M through {stack.base_url}")
        sequential["1M"] = measure({"1M": stack.port}, token, args.rounds, args.warmup)
        loads["1M"] = os.getloadavg()[0]
        bodies_1m = sample_bodies(stack.port, token)

        copy = LocalStack(
            data_dir=data_dir,
            port=free_port(),
            quiet=True,
            env_overrides={"DATABASE_URL": pg.url(stack.server, "planter_10k")},
        )
        copy.server = stack.server
        copy.start_functions()
        log(f"paired: 10k copy on {copy.base_url}, 1M on {stack.base_url}, requests interleaved")
        paired = measure({"10k": copy.port, "1M": stack.port}, token, args.paired_rounds, args.warmup)
        loads["paired"] = os.getloadavg()[0]

        explained = explain(engine, email, show=MEASURED_STATEMENTS)
        engine_10k = sa.create_engine(pg.url(stack.server, "planter_10k"), pool_size=1, max_overflow=0)
        cleanups.append(engine_10k.dispose)
        explained_10k = {e.name: e for e in explain(engine_10k, email)}
        context = {
            "when": utcnow().strftime("%Y-%m-%d %H:%M UTC"),
            "cpus": os.cpu_count(),
            "pg_version": pg_version,
            "rounds": args.rounds,
            "paired_rounds": args.paired_rounds,
            "warmup": args.warmup,
            "user": email,
            "user_stats": f"{stats['tasks']} tasks, {stats['finished_30d']} finished in 30 days, "
            f"{stats['active']} active",
            "counts_10k": ", ".join(f"{k} {v:,}" for k, v in counts_10k.items()),
            "counts_1m": ", ".join(f"{k} {v:,}" for k, v in counts_1m.items()),
            "fill_10k": fill_10k,
            "fill_1m": fill_1m,
            "loads": ", ".join(f"{k} {v:.1f}" for k, v in loads.items()),
            "total": time.monotonic() - run_started,
        }
        text, ok = report(sequential, paired, explained, explained_10k, context)
        print()
        print(text)
        for state, bodies in (("10k", bodies_10k), ("1M", bodies_1m)):
            print(f"{state} metrics of the user:", json.dumps(bodies["metrics"]["project_health"]))
        if not args.no_docs:
            write_docs(text)
        log("target met" if ok else "TARGET MISSED")
        return 0 if ok else 1
    finally:
        for cleanup in cleanups:
            cleanup()
        if copy is not None:
            copy.server = None  # shared with the main stack, which stops it
            copy.stop()
        stack.stop()
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            log(f"data kept in {data_dir}")


if __name__ == "__main__":
    raise SystemExit(main())
