"""What the Findings of BENCHMARKS.md propose, written out so that `make bench` can measure them.

Nothing here is used by Planter: these are candidate shapes of two hot paths, run by the bench
next to the shipped code (same database, same driver, same harness) so that a recommendation
comes with its measured round trips and throughput instead of a guess.

- ``progress_one_statement``: the progress callback's whole transaction (lock the task, refuse
  terminal ones, move the phase forward only, append the progress row once per update_id, update
  the task, read it back with its steps) as one statement, on a connection in autocommit mode.
- ``get_task_autocommit``: the task read as it is, on a connection in autocommit mode (a single
  SELECT needs no BEGIN/COMMIT).

Autocommit must come from an engine created with ``isolation_level="AUTOCOMMIT"``: switching one
pooled connection with ``execution_options(isolation_level=...)`` makes SQLAlchemy restore the
level when the connection goes back to the pool, which costs pg8000 two more statements.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

import sqlalchemy as sa

from common.models import PHASES, ProgressCallback
from common.queries.tasks import TASK_COLUMNS, TERMINAL_SQL

_PHASES = "ARRAY[" + ", ".join(f"'{p}'" for p in PHASES) + "]"

PROGRESS_ONE_STATEMENT = sa.text(
    f"""
    WITH locked AS (
        SELECT id, status, progress_percent FROM tasks WHERE id = :task_id FOR UPDATE
    ), decided AS (
        SELECT l.id,
               CASE WHEN CAST(:status AS text) IS NOT NULL
                         AND array_position({_PHASES}, CAST(:status AS text)) >= array_position({_PHASES}, l.status)
                    THEN CAST(:status AS text) ELSE l.status END AS status,
               coalesce(CAST(:percent AS smallint), l.progress_percent) AS percent
        FROM locked l WHERE l.status NOT IN {TERMINAL_SQL}
    ), stored AS (
        INSERT INTO task_progress (task_id, update_id, status, message, progress_percent,
                                   org_url, repo_url, deployment_url, gcp_project_id)
        SELECT d.id, CAST(:update_id AS text), d.status, :message, d.percent,
               CAST(:org_url AS text), CAST(:repo_url AS text), CAST(:deployment_url AS text),
               CAST(:gcp_project_id AS text)
        FROM decided d
        ON CONFLICT (task_id, update_id) DO NOTHING
        RETURNING task_id
    ), updated AS (
        UPDATE tasks t SET progress_percent = greatest(t.progress_percent, d.percent), message = :message,
               status = d.status, org_url = coalesce(CAST(:org_url AS text), t.org_url),
               repo_url = coalesce(CAST(:repo_url AS text), t.repo_url),
               deployment_url = coalesce(CAST(:deployment_url AS text), t.deployment_url),
               gcp_project_id = coalesce(CAST(:gcp_project_id AS text), t.gcp_project_id),
               updated_at = now(), version = t.version + 1
        FROM decided d JOIN stored s ON s.task_id = d.id
        WHERE t.id = d.id
        RETURNING t.*
    )
    SELECT (SELECT status FROM locked) AS locked_status, {TASK_COLUMNS} FROM updated t
    UNION ALL
    SELECT (SELECT status FROM locked) AS locked_status, {TASK_COLUMNS} FROM tasks t
    WHERE t.id = :task_id AND NOT EXISTS (SELECT 1 FROM updated)
    """
)


def progress_one_statement(conn: sa.Connection, task_id: uuid.UUID, update: ProgressCallback) -> dict[str, Any]:
    """The progress callback in one statement: the task row (404/409 decided from what it returns)."""
    params = {
        "task_id": task_id,
        "status": update.status,
        "percent": update.progress_percent,
        "update_id": update.update_id,
        "message": update.message,
        "org_url": update.org_url,
        "repo_url": update.repo_url,
        "deployment_url": update.deployment_url,
        "gcp_project_id": update.gcp_project_id,
    }
    row = conn.execute(PROGRESS_ONE_STATEMENT, params).mappings().first()
    if row is None:
        raise LookupError("no task with that id")  # → 404
    if row["locked_status"] in ("completed", "failed", "cancelled"):
        raise ValueError(f"the task is already {row['locked_status']}")  # → 409
    return dict(row)


def autocommit_engine(url: str, pool_size: int) -> sa.Engine:
    """An engine whose connections are in autocommit mode from the start (no reset on return)."""
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", pool_size=pool_size, max_overflow=0)


# --- the candidates applied to a whole server (bench only) --------------------------------------

_statement_cache: dict[str, str] = {}
_STATEMENT_CACHE_LIMIT = 2_000
_patches: list[tuple[Any, str, Any]] = []  # (owner, attribute, previous value), newest last
_engines: list[sa.Engine] = []


def _patch(owner: Any, name: str, value: Any) -> None:
    _patches.append((owner, name, getattr(owner, name)))
    setattr(owner, name, value)


def undo() -> None:
    """Take every candidate out of this process again (newest patch first)."""
    while _patches:
        owner, name, value = _patches.pop()
        setattr(owner, name, value)


def memoize_paramstyle() -> None:
    """Cache pg8000's paramstyle conversion per SQL text.

    pg8000 rewrites ``%s`` into ``$1`` by scanning the statement character by character in Python
    on every execution (pg8000/dbapi.py, ``convert_paramstyle``). SQLAlchemy hands it the same
    compiled string every time, and for the "format" style the result depends on the text only.
    """
    from pg8000 import legacy

    original = legacy.convert_paramstyle
    if getattr(original, "memoized", False):
        return

    def convert(style: str, query: str, args: Any) -> tuple[str, Any]:
        if style != "format":
            return original(style, query, args)  # type: ignore[no-any-return]
        statement = _statement_cache.get(query)
        if statement is None:
            statement, _ = original(style, query, args)
            if len(_statement_cache) < _STATEMENT_CACHE_LIMIT:
                _statement_cache[query] = statement
        return statement, args

    convert.memoized = True  # type: ignore[attr-defined]
    _patch(legacy, "convert_paramstyle", convert)


def apply() -> None:
    """Install every candidate in this process (``undo`` takes them out): what the candidate server runs.

    1. pg8000's paramstyle conversion cached per statement text;
    2. one engine in autocommit mode: single statements run without BEGIN/COMMIT, and a
       transaction is BEGIN and COMMIT sent as simple queries (one round trip each, where
       pg8000's ``commit()`` costs three);
    3. the progress callback as one statement;
    4. the pipeline's claim and heartbeat committed without waiting for the WAL flush.
    """
    import importlib

    from sqlalchemy import exc as sa_exc

    from common import db
    from common.config import get_settings
    from common.errors import Conflict, DatabaseUnavailable, NotFound
    from common.models import Task
    from functions.routes import ROUTES

    memoize_paramstyle()
    for route in ROUTES:  # the handler modules are imported lazily in production; patch them all now
        importlib.import_module(route.handler.partition(":")[0])
    original_rit = db.run_in_transaction
    engine_holder = _engines

    def engine() -> sa.Engine:
        if not engine_holder:
            s = get_settings()
            engine_holder.append(
                sa.create_engine(
                    s.database_url,
                    isolation_level="AUTOCOMMIT",
                    pool_size=s.db_pool_size,
                    max_overflow=s.db_max_overflow,
                    pool_recycle=1800,
                    pool_timeout=10,
                )
            )
        return engine_holder[0]

    def retrying(run: Any) -> Any:
        for attempt in (1, 2):
            try:
                return run()
            except (sa_exc.DBAPIError, sa_exc.TimeoutError, ConnectionError) as error:
                if not db.is_disconnect(error):
                    raise
                if attempt == 2:
                    raise DatabaseUnavailable("the database is unreachable") from error
        raise AssertionError("unreachable")

    def run_in_transaction(work: Any, *, engine_: sa.Engine | None = None, **_: Any) -> Any:
        def once() -> Any:
            with engine().connect() as conn:
                conn.exec_driver_sql("BEGIN")
                try:
                    result = work(conn)
                except BaseException:
                    conn.exec_driver_sql("ROLLBACK")
                    raise
                conn.exec_driver_sql("COMMIT")
                return result

        return retrying(once)

    def run_single(work: Any, **_: Any) -> Any:
        def once() -> Any:
            with engine().connect() as conn:
                return work(conn)

        return retrying(once)

    for name, module in list(sys.modules.items()):
        if name.startswith(("common.", "functions.")) and getattr(module, "run_in_transaction", None) is original_rit:
            _patch(module, "run_in_transaction", run_in_transaction)
    _patch(db, "run_in_transaction", run_in_transaction)
    _patch(db, "get_engine", engine)
    # Single-statement reads and upserts: no transaction at all.
    for name in ("common.services.dashboard", "common.services.users"):
        _patch(sys.modules[name], "run_in_transaction", run_single)
    tasks_service = sys.modules["common.services.tasks"]
    _patch(
        tasks_service,
        "get_task",
        lambda task_id, user: run_single(lambda conn: tasks_service.read_task(conn, task_id, user)),
    )
    _patch(db, "ping", lambda engine=None: run_single(lambda conn: conn.exec_driver_sql("SELECT 1")))

    def post_progress(task_id: uuid.UUID, update: ProgressCallback) -> Task:
        try:
            row = run_single(lambda conn: progress_one_statement(conn, task_id, update))
        except LookupError:
            raise NotFound("no task with that id") from None
        except ValueError as error:
            raise Conflict(str(error)) from None
        return tasks_service.to_task(row)  # type: ignore[no-any-return]

    _patch(sys.modules["functions.progress"], "record", post_progress)

    # The claim (and the lease heartbeat) need not wait for the WAL flush: a claim lost in a crash
    # is redone by the next delivery, and the durable commit of the step's record flushes it anyway.
    steps_queries = sys.modules["common.queries.steps"]
    for name in ("claim", "heartbeat"):
        original = getattr(steps_queries, name)

        def without_flush(conn: sa.Connection, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            return _original(conn, *args, **kwargs)

        _patch(steps_queries, name, without_flush)
