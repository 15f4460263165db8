"""The in-process measures of `make bench`: Planter's services called directly, on a `Runtime` the
bench builds by construction (a `Database` over an engine made here, an enqueuer that only keeps
the hand-overs, the simulated provider through `ProviderRegistry.of`).

Round trips are counted without touching pg8000: the engine's connections are opened over a
`CountingSocket`, and each flush of pg8000's write buffer (after which it blocks on the answer) is
one round trip. Statements are SQLAlchemy's `before_cursor_execute` events of that same engine.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pg8000
import sqlalchemy as sa

from common.config import load_settings
from common.models import CreateProject, ProgressCallback
from common.providers.simulated import SimulatedProvider
from common.runtime import Database, ProviderRegistry, Runtime
from common.services import progress, projects, steps, tasks, users
from dev.bench_peer import backend_cpu_seconds
from dev.bench_util import median, percentile

T = TypeVar("T")


# --- the one adapter ------------------------------------------------------------------------------


def call(rt: Runtime, service: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Every call of a Planter service in this process goes through here: services take the
    runtime as their first parameter."""
    return service(rt, *args, **kwargs)


# --- a runtime of the bench's own ------------------------------------------------------------------


class KeptHandOvers:
    """The null enqueuer: hand-overs kept in order, for the one worker of the drain to take."""

    def __init__(self) -> None:
        self.pending: collections.deque[tuple[str, str]] = collections.deque()

    def enqueue_step(self, task_id: str, step: str, generation: int, priority: str = "normal") -> None:
        self.pending.append((task_id, step))

    def schedule_step(self, task_id: str, step: str, generation: int, **_: Any) -> None:
        self.pending.append((task_id, step))


@dataclass
class Tally:
    trips: int = 0
    statements: list[str] = field(default_factory=list)


class _CountingFile:
    def __init__(self, inner: Any, tally: Tally) -> None:
        self._inner, self._tally = inner, tally
        self.write, self.read, self.close = inner.write, inner.read, inner.close

    def flush(self) -> None:
        self._tally.trips += 1
        self._inner.flush()


class CountingSocket:
    """A connected socket whose buffered file (what pg8000 talks through) counts its flushes."""

    def __init__(self, path: str, tally: Tally) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(path)
        self._tally = tally

    def makefile(self, mode: str) -> _CountingFile:
        assert mode == "rwb"  # what pg8000 asks for
        return _CountingFile(self._sock.makefile("rwb"), self._tally)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


@dataclass
class Bench:
    """A runtime over an engine of the bench's own, with what it counted."""

    rt: Runtime
    enqueuer: KeptHandOvers
    tally: Tally
    backends: list[int]


def bench_runtime(database_url: str, pool: int = 2, startup: dict[str, str] | None = None) -> Bench:
    """A Runtime on ``database_url`` (a pg8000 URL over a unix socket), counting as it goes."""
    url = sa.engine.make_url(database_url)
    tally, backends, enqueuer = Tally(), [], KeptHandOvers()
    path = str(url.query["unix_sock"])

    def connect() -> Any:
        # (pg8000.connect has no ``sock``; the Connection class it builds, which SQLAlchemy expects, has)
        return pg8000.Connection(
            user=url.username or "postgres",
            database=url.database,
            sock=CountingSocket(path, tally),
            ssl_context=False,
            startup_params=startup or {},
        )

    engine = sa.create_engine(
        "postgresql+pg8000://", creator=connect, isolation_level="AUTOCOMMIT", pool_size=pool, max_overflow=0
    )

    @sa.event.listens_for(engine, "connect")
    def _backend(dbapi_connection: Any, _: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT pg_backend_pid()")
        backends.append(cursor.fetchone()[0])

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _statement(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        tally.statements.append(statement)

    settings = dataclasses.replace(load_settings(), database_url=database_url, step_provider="simulated")
    provider = SimulatedProvider(clock=time.time)
    rt = Runtime(settings=settings, db=Database(engine), enqueuer=enqueuer, providers=ProviderRegistry.of(provider))
    return Bench(rt, enqueuer, tally, backends)


def statement_kind(statement: str) -> str:
    words = statement.split()
    first = words[0].upper() if words else "?"
    return "SELECT … FOR UPDATE" if first == "SELECT" and "FOR UPDATE" in statement.upper() else first


def describe(statements: list[str]) -> str:
    return ", ".join(statement_kind(s) for s in statements)


# --- the engine: a pipeline drained by one worker ----------------------------------------------------


def create_tasks(bench: Bench, worker: users.User, count: int, label: str) -> list[str]:
    """Tasks of the pipeline, their first step handed over to the bench's enqueuer."""
    create = projects.create_project
    return [
        str(call(bench.rt, create, worker, CreateProject(project_name=f"{label} {i}"), None).task.task_id)
        for i in range(count)
    ]


def drain(bench: Bench) -> dict[str, Any]:
    """One worker runs every handed-over step until none is left: claim + record + hand-over."""
    rt, pending, tally = bench.rt, bench.enqueuer.pending, bench.tally
    provider = rt.providers.get()
    step_ms, trips, statements, kinds = [], [], [], []
    cpu, pg_cpu, began = time.process_time(), backend_cpu_seconds(bench.backends), time.perf_counter()
    while pending:
        task_id, step = pending.popleft()
        trips_before, statements_before = tally.trips, len(tally.statements)
        started = time.perf_counter()
        call(rt, steps.run_step, uuid.UUID(task_id), step, provider)
        step_ms.append(1000 * (time.perf_counter() - started))
        trips.append(tally.trips - trips_before)
        statements.append(len(tally.statements) - statements_before)
        kinds.append(describe(tally.statements[statements_before:]))
    elapsed = time.perf_counter() - began
    return {
        "steps": len(step_ms),
        "seconds": elapsed,
        "step_ms": step_ms,
        "python_cpu_s": time.process_time() - cpu,
        "pg_cpu_s": backend_cpu_seconds(bench.backends) - pg_cpu,
        "trips": sum(trips) / max(1, len(trips)),
        "statements": sum(statements) / max(1, len(statements)),
        "statements_middle_step": kinds[len(kinds) // 2] if kinds else "",
    }


# --- the hot paths in-process: round trips, statements, planning -------------------------------------


def round_trips(bench: Bench, paths: list[Any], explain_url: str) -> dict[str, Any]:
    """Round trips and statements of one warm request per hot path, through the gateway in-process."""
    from dev.gateway import create_app

    client = call(bench.rt, create_app).test_client()
    found: dict[str, Any] = {}
    for path in paths:
        for i in (1, 2, 0):  # two warm-ups (user cache, pool, dialect), then the counted one
            trips, mark = bench.tally.trips, len(bench.tally.statements)
            captured: list[tuple[str, Any]] = []
            listener = _capture(bench.rt.db.engine, captured)
            response = call(
                bench.rt,
                client.open,
                path.paths[i % len(path.paths)],
                method=path.method,
                headers=path.headers[i % len(path.headers)],
                data=path.body,
            )
            sa.event.remove(bench.rt.db.engine, "before_cursor_execute", listener)
        found[path.key] = {
            "trips": bench.tally.trips - trips,
            "statements": describe(bench.tally.statements[mark:]),
            "status": response.status_code,
        } | explain(explain_url, captured)
    return found


def _capture(engine: sa.Engine, into: list[tuple[str, Any]]) -> Callable[..., None]:
    def listener(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        into.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", listener)
    return listener


def explain(url: str, captured: list[tuple[str, Any]]) -> dict[str, float]:
    """Planning and execution time PostgreSQL reports for the statements of one request (rolled back)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    rounds: list[tuple[float, float]] = []
    try:
        with engine.connect() as conn:
            for _ in range(4):  # the first round warms this backend's catalog caches; the rest count
                planning = execution = 0.0
                for statement, parameters in captured:
                    if statement.split()[0].upper() in ("BEGIN", "COMMIT", "ROLLBACK", "SET"):
                        continue
                    sql = "EXPLAIN (ANALYZE, SUMMARY, FORMAT JSON) " + statement
                    plan = conn.exec_driver_sql(sql, parameters).scalar_one()
                    plan = json.loads(plan) if isinstance(plan, str) else plan
                    planning += plan[0]["Planning Time"]
                    execution += plan[0]["Execution Time"]
                conn.rollback()  # EXPLAIN ANALYZE ran the writes: keep none
                rounds.append((planning, execution))
    finally:
        engine.dispose()
    return {"planning_ms": median([r[0] for r in rounds[1:]]), "execution_ms": median([r[1] for r in rounds[1:]])}


# --- the database ceiling, primitives and per-request work outside the database ------------------


def _threads_loop(work: Callable[[int], None], threads: int, seconds: float) -> tuple[float, list[float]]:
    stop = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def loop(i: int) -> None:
        try:
            while (started := time.perf_counter()) < stop:
                work(i)
                latencies[i].append(time.perf_counter() - started)
        except BaseException as error:
            errors.append(error)

    pool = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    begun = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    flat = [x for lat in latencies for x in lat]
    return len(flat) / (time.perf_counter() - begun), flat


def database_ceiling(
    url: str, write_tasks: list[str], read_tasks: list[str], reader: users.User, reps: int, seconds: float
) -> dict[str, Any]:
    """The progress write and the task read as the services do them, 8 threads, no HTTP."""
    threads = 8
    update = ProgressCallback(message="bench progress", progress_percent=50)
    shipped = bench_runtime(url, pool=threads).rt
    no_flush = bench_runtime(url, pool=threads, startup={"synchronous_commit": "off"}).rt
    variants: list[tuple[str, Runtime, Callable[[Runtime, int], Any]]] = [
        ("progress write, as shipped", shipped, lambda rt, i: call(rt, progress.post_progress, write_ids[i], update)),
        (
            "progress write, commits not waiting for the WAL flush (synchronous_commit off)",
            no_flush,
            lambda rt, i: call(rt, progress.post_progress, write_ids[i], update),
        ),
        ("task read, as shipped", shipped, lambda rt, i: call(rt, tasks.get_task, read_ids[i], reader)),
    ]
    write_ids = [uuid.UUID(t) for t in write_tasks]
    read_ids = [uuid.UUID(t) for t in read_tasks]
    results: dict[str, dict[str, list[float]]] = {name: {"runs": [], "p50_ms": []} for name, *_ in variants}
    for _ in range(reps):
        for name, rt, work in variants:
            work(rt, 0)  # connect outside the measured loop
            rate, latencies = _threads_loop(functools.partial(work, rt), threads, seconds)
            results[name]["runs"].append(rate)
            results[name]["p50_ms"].append(percentile(latencies, 50) * 1000)
    shipped.db.engine.dispose()
    no_flush.db.engine.dispose()
    return {"threads": threads, "variants": results}


def db_primitives(url: str) -> dict[str, float]:
    """What one round trip and one durable commit cost here: single thread, pg8000, autocommit."""
    found: dict[str, float] = {}

    def p50(fn: Callable[[], Any], n: int) -> float:
        times = []
        for _ in range(n):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return median(times) * 1000

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        cursor: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        found["SELECT 1 without parameters (simple query: 1 round trip)"] = p50(
            lambda: cursor.execute("SELECT 1"), 2000
        )
        found["SELECT %s with one parameter (extended query: 3 round trips)"] = p50(
            lambda: cursor.execute("SELECT %s", (1,)), 2000
        )
        update = "UPDATE users SET subject = subject WHERE email = 'callbacks@planter.dev'"
        found["one-row UPDATE, durable commit (synchronous_commit on)"] = p50(lambda: cursor.execute(update), 200)
        cursor.execute("SET synchronous_commit = off")
        found["one-row UPDATE, synchronous_commit off"] = p50(lambda: cursor.execute(update), 200)
    for label, args in (
        ("open a new connection and run SELECT 1 (SQLAlchemy + pg8000, unix socket, no TLS)", {}),
        ("the same with connect_args ssl_context=False (no SSL context built, no SSLRequest)", {"ssl_context": False}),
    ):
        fresh = sa.create_engine(url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT", connect_args=args)
        found[label] = p50(functools.partial(_connect_and_query, fresh), 60)
        fresh.dispose()
    return found


def _connect_and_query(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")


def cpu_items(rt: Runtime, user_token: str, task_id: str, callback_token: str, read_task: str) -> dict[str, float]:
    """Microseconds per call of the per-request work outside the database, single thread."""

    def per_call(fn: Callable[[], Any], n: int = 1000) -> float:
        fn()
        started = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - started) / n * 1e6

    owner = call(rt, users.resolve_user, rt.tokens.user(user_token))
    row = rt.db.statement(lambda conn: tasks.read_task(conn, uuid.UUID(read_task), owner))
    task = tasks.to_task(row)
    body = json.dumps({"message": "bench progress", "progress_percent": 50})
    return {
        "verify a user token (PyJWT, HS256)": per_call(lambda: rt.tokens.user(user_token)),
        "verify a callback token (PyJWT, HS256)": per_call(lambda: rt.tokens.callback(callback_token, task_id)),
        "parse + validate the progress body (json + pydantic)": per_call(
            lambda: ProgressCallback.model_validate(json.loads(body))
        ),
        "to_task(row): build the pydantic Task with its steps": per_call(lambda: tasks.to_task(row)),
        "serialize it with model_dump_json() (pydantic-core, as common/http.py does)": per_call(task.model_dump_json),
    }
