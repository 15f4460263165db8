"""The in-process measures of `make bench`: Planter's services called directly, on a `Runtime` the
bench builds by construction (a `Database` over an engine made here, an enqueuer that only keeps
the hand-overs, the simulated provider through `ProviderRegistry.of`).

Round trips and statements are counted on the wire, without touching pg8000: the engine's
connections are opened over a `CountingSocket`, and each flush of pg8000's write buffer (after
which it blocks on the answer) is one round trip. The protocol messages flushed are parsed: each
Bind (extended protocol: a parameterised or named prepared statement run) and each simple Query
(BEGIN, COMMIT) is one statement, as the peer's libpq trace counts them (dev/bench_peer.py). Not
SQLAlchemy's events: the engine's prepared statements (common.db.prepared) bypass them.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pg8000
import sqlalchemy as sa

from common.config import load_settings
from common.models import CreateProject, ProgressCallback
from common.providers.simulated import SimulatedProvider
from common.runtime import Database, ProviderRegistry, Runtime
from common.services import progress, projects, steps, tasks, users
from dev.bench_peer import backend_cpu_seconds
from dev.bench_util import median, percentile

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
    """What the engine's connections sent: one entry per flush (a round trip), read afterwards."""

    flushes: list[tuple[_CountingFile, bytes]] = field(default_factory=list)
    _statements: list[list[str]] = field(default_factory=list)  # per flush, parsed so far

    @property
    def trips(self) -> int:
        return len(self.flushes)

    def statements(self, first: int = 0, last: int | None = None) -> list[str]:
        """The SQL of each statement sent by flushes ``first`` to ``last`` (trip marks).

        Parsed on demand, after the measured work: the bench's own parsing is not charged to it."""
        for connection, sent in self.flushes[len(self._statements) :]:
            self._statements.append(connection.statements(sent))
        return [sql for flush in self._statements[first:last] for sql in flush]


class _CountingFile:
    """pg8000's buffered file on one connection: what it writes is kept until the flush sends it."""

    def __init__(self, inner: Any, tally: Tally) -> None:
        self._inner, self._tally = inner, tally
        self.read, self.close = inner.read, inner.close
        self._unsent: list[bytes] = []
        self._started = False  # the startup message, the first one sent, has no type byte
        self._prepared: dict[bytes, str] = {}  # statement name (b"" unnamed) -> its SQL, from Parse

    def write(self, data: bytes) -> int:
        self._unsent.append(bytes(data))
        written: int = self._inner.write(data)
        return written

    def flush(self) -> None:
        self._tally.flushes.append((self, b"".join(self._unsent)))
        self._unsent.clear()
        self._inner.flush()

    def statements(self, sent: bytes) -> list[str]:
        """The SQL of each Bind and simple Query among the protocol messages of one flush, in the
        order this connection sent them (a Bind names a statement an earlier Parse defined)."""
        found, at = [], 0
        if not self._started:
            self._started = True
            at = int.from_bytes(sent[:4], "big")
        while at < len(sent):
            kind, length = sent[at : at + 1], int.from_bytes(sent[at + 1 : at + 5], "big")
            body = sent[at + 5 : at + 1 + length]
            at += 1 + length
            if kind == b"P":  # Parse: statement name, SQL
                name, sql = body.split(b"\0")[:2]
                self._prepared[name] = sql.decode()
            elif kind == b"B":  # Bind: portal name, statement name, ...
                found.append(self._prepared.get(body.split(b"\0")[1], "?"))
            elif kind == b"Q":  # simple Query: SQL
                found.append(body.split(b"\0")[0].decode())
        return found


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
        str(create(bench.rt, worker, CreateProject(project_name=f"{label} {i}"), None).task.task_id)
        for i in range(count)
    ]


def drain(bench: Bench) -> dict[str, Any]:
    """One worker runs every handed-over step until none is left: claim + record + hand-over."""
    rt, pending, tally = bench.rt, bench.enqueuer.pending, bench.tally
    provider = rt.providers.get()
    step_ms, marks = [], [tally.trips]
    cpu, pg_cpu, began = time.process_time(), backend_cpu_seconds(bench.backends), time.perf_counter()
    while pending:
        task_id, step = pending.popleft()
        started = time.perf_counter()
        steps.run_step(rt, uuid.UUID(task_id), step, provider)
        step_ms.append(1000 * (time.perf_counter() - started))
        marks.append(tally.trips)
    elapsed = time.perf_counter() - began
    python_cpu, pg_cpu = time.process_time() - cpu, backend_cpu_seconds(bench.backends) - pg_cpu
    trips = [b - a for a, b in itertools.pairwise(marks)]
    kinds = [tally.statements(a, b) for a, b in itertools.pairwise(marks)]
    return {
        "steps": len(step_ms),
        "seconds": elapsed,
        "step_ms": step_ms,
        "python_cpu_s": python_cpu,
        "pg_cpu_s": pg_cpu,
        "trips": sum(trips) / max(1, len(trips)),
        "statements": sum(len(k) for k in kinds) / max(1, len(kinds)),
        "statements_middle_step": describe(kinds[len(kinds) // 2]) if kinds else "",
    }


# --- the hot paths in-process: round trips, statements, planning -------------------------------------


def round_trips(bench: Bench, paths: list[Any], explain_url: str) -> dict[str, Any]:
    """Round trips and statements of one warm request per hot path, through the gateway in-process."""
    from dev.gateway import create_app

    client = create_app(bench.rt).test_client()
    found: dict[str, Any] = {}
    for path in paths:
        for i in (1, 2, 0):  # two warm-ups (user cache, pool, dialect), then the counted one
            trips = bench.tally.trips
            captured: list[tuple[str, Any]] = []
            listener = _capture(bench.rt.db.engine, captured)
            response = client.open(
                path.paths[i % len(path.paths)],
                method=path.method,
                headers=path.headers[i % len(path.headers)],
                data=path.body,
            )
            sa.event.remove(bench.rt.db.engine, "before_cursor_execute", listener)
        found[path.key] = {
            "trips": bench.tally.trips - trips,
            "statements": describe(bench.tally.statements(trips)),
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
        ("progress write, as shipped", shipped, lambda rt, i: progress.post_progress(rt, write_ids[i], update)),
        (
            "progress write, commits not waiting for the WAL flush (synchronous_commit off)",
            no_flush,
            lambda rt, i: progress.post_progress(rt, write_ids[i], update),
        ),
        ("task read, as shipped", shipped, lambda rt, i: tasks.get_task(rt, read_ids[i], reader)),
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

    owner = users.resolve_user(rt, rt.tokens.user(user_token))
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
