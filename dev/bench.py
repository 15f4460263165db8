"""`make bench`: every hot path measured against the framework's own ceiling, in one run.

    python -m dev.bench            # the full run (~6-8 minutes), writes BENCHMARKS.md
    python -m dev.bench --quick    # a smoke run (100k tasks, one short repetition), writes nothing
    WORKERS=2 THREADS=8 DB_POOL_SIZE=4 python -m dev.bench   # other server settings

It starts the local stack (embedded PostgreSQL migrated by Alembic, the local Cloud Tasks stand-in,
functions-framework serving the gateway with the production server settings) on free ports,
fills the database in SQL (1,000,000 tasks by default), and then measures, in this order:

1. the HTTP ceiling (dev/bench_hello.py:hello under the same WORKERS/THREADS) and every hot
   path at 16 connections, interleaved round by round so that drift hits both alike;
2. the generator check: the same load generator against a two-worker hello, to show it is
   not what bounds the ceiling;
3. the database ceiling: the progress write in a tight loop, 8 threads, one process, pg8000;
   and the round trips of every hot path, counted by a shim around pg8000 in this process;
4. the pipeline overhead of one step (claim, record, hand-over) apart from the provider's work
   and the queue's delivery;
5. cold starts of every deployed function against minimal functions, and import costs;
6. py-spy profiles of the server under each load.

Raw results and profiles are kept in .local/bench/ (results.json, *.raw).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import http.client
import json
import os
import pathlib
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import sqlalchemy as sa

from common import config, db, queue
from common.auth import SIGNATURE_HEADER, issue_callback_token, sign_body
from common.config import Settings
from common.models import CreateProject, ProgressCallback
from common.pipeline import STEPS
from common.providers import HandedOff, StepContext, StepOutcome
from common.providers.simulated import SimulatedProvider
from common.queue import step_body
from common.runtime import Database, ProviderRegistry, Runtime, SystemClock
from common.services import users
from dev import bench_candidates as cand
from dev import bench_profile as prof
from dev.bench_report import write_report
from dev.bench_seed import BENCH_EMAIL, WORKER_EMAIL, Seeded, seed
from dev.bench_util import (
    LoadResult,
    RoundTripCounter,
    build_request,
    describe_statements,
    median,
    percentile,
    run_load,
)
from dev.stack import ROOT, VENV_BIN, LocalStack, free_port

WORK_DIR = ROOT / ".local" / "bench"
CONNECTIONS = 16
DB_THREADS = 8
PROGRESS_BODY = json.dumps({"message": "bench progress", "progress_percent": 50}).encode()


@dataclass
class Options:
    reps: int = 3
    duration: float = 4.0
    warmup: float = 1.0
    rows: int = 1_000_000
    cold_runs: int = 5
    profile_seconds: float = 4.0
    pipeline_tasks: int = 30
    write: bool = True


def parse_args() -> Options:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: small, short, writes no BENCHMARKS.md")
    parser.add_argument("--reps", type=int, help="repetitions of each load run (medians are quoted)")
    parser.add_argument("--duration", type=float, help="seconds measured per load run")
    parser.add_argument("--rows", type=int, help="tasks in the database")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite BENCHMARKS.md")
    args = parser.parse_args()
    opts = Options()
    if args.quick:
        opts = Options(reps=1, duration=2, warmup=0.5, rows=100_000, cold_runs=1, profile_seconds=2, pipeline_tasks=5)
        opts.write = False
    if args.reps:
        opts.reps = args.reps
    if args.duration:
        opts.duration = args.duration
    if args.rows:
        opts.rows = args.rows
    if args.no_write:
        opts.write = False
    return opts


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def server_settings() -> dict[str, str]:
    """What the functions are served with: functions-framework's and Planter's own defaults."""
    defaults = Settings()
    return {
        "WORKERS": os.environ.get("WORKERS", "1"),
        "THREADS": os.environ.get("THREADS", str((os.cpu_count() or 1) * 4)),
        "DB_POOL_SIZE": os.environ.get("DB_POOL_SIZE", str(defaults.db_pool_size)),
        "DB_MAX_OVERFLOW": os.environ.get("DB_MAX_OVERFLOW", str(defaults.db_max_overflow)),
    }


# --- processes ------------------------------------------------------------------------------------


def start_function(source: pathlib.Path, target: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(str(VENV_BIN / "functions-framework"), "--source", str(source), "--target", target),
            *("--host", "127.0.0.1", "--port", str(port)),
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_answering(port: int, path: str = "/", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", path)
            conn.getresponse().read()
            return
        except (ConnectionError, OSError):
            time.sleep(0.1)
        finally:
            conn.close()
    raise TimeoutError(f"nothing answers on port {port}")


_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root_pid: int) -> float:
    """CPU seconds (user + system) of a process and its live descendants, plus its reaped children."""
    parents: dict[int, int] = {}
    times: dict[int, tuple[int, int]] = {}
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14]))
    tree = {root_pid}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    total = sum(times[p][0] for p in tree if p in times) + times.get(root_pid, (0, 0))[1]
    return total / _TICK


def postmaster_pid(data_dir: pathlib.Path) -> int | None:
    for candidate in (data_dir / "postmaster.pid", *data_dir.glob("*/postmaster.pid")):
        with contextlib.suppress(OSError, ValueError):
            return int(candidate.read_text().split()[0])
    return None


# --- the sink Cloud Tasks delivers to ---------------------------------------------------------------


class Sink:
    """Answers every delivered step with 200 and remembers when each task name arrived."""

    def __init__(self) -> None:
        arrivals: dict[str, float] = {}
        self.arrivals = arrivals

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                arrivals[self.headers.get("X-CloudTasks-TaskName", "")] = time.perf_counter()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True, name="sink").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/internal/steps"

    def close(self) -> None:
        self.server.shutdown()


class Recorder:
    """A queue.Enqueuer that only remembers (the pipeline measurement's hand-over)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    def enqueue_step(self, task_id: str, step: str, generation: int, priority: str = "normal") -> None:
        self.calls.append((task_id, step, generation))

    def schedule_step(
        self, task_id: str, step: str, generation: int, *, at: dt.datetime, suffix: str, priority: str = "normal"
    ) -> None:
        self.calls.append((task_id, step, generation))


# --- fixtures -------------------------------------------------------------------------------------


@dataclass
class Fixtures:
    bench_user: users.User
    worker_user: users.User
    bench_token: str
    worker_token: str
    step_secret: str
    progress_tasks: list[str]
    read_tasks: list[str]
    pipeline_tasks: list[str]
    cold_tasks: list[str]
    callback_tokens: dict[str, str] = field(default_factory=dict)


def prepare(engine: sa.Engine, seeded: Seeded, opts: Options) -> Fixtures:
    from common.services.projects import create_project
    from dev.token import user_token

    with engine.connect() as conn:
        worker_id = conn.execute(sa.text("SELECT id FROM users WHERE email = :e"), {"e": WORKER_EMAIL}).scalar_one()
        read_tasks = [
            str(r[0])
            for r in conn.execute(
                sa.text("SELECT id FROM tasks WHERE user_id = :u ORDER BY created_at DESC LIMIT 64"),
                {"u": seeded.bench_user},
            )
        ]
    worker = users.User(id=worker_id, email=WORKER_EMAIL)
    rt = bench_runtime(Recorder())

    def create(name: str) -> str:
        return create_project(rt, worker, CreateProject(project_name=name), None).task.task_id

    progress_tasks = [create(f"callback target {i}") for i in range(64)]
    pipeline_tasks = [create(f"pipeline {i}") for i in range(2 * opts.pipeline_tasks)]
    cold_tasks = [create(f"cold start {i}") for i in range(opts.cold_runs + 1)]
    settings = rt.settings
    return Fixtures(
        bench_user=users.User(id=seeded.bench_user, email=BENCH_EMAIL),
        worker_user=worker,
        bench_token=user_token(BENCH_EMAIL),
        worker_token=user_token(WORKER_EMAIL),
        step_secret=settings.step_signing_secret,
        progress_tasks=progress_tasks,
        read_tasks=read_tasks,
        pipeline_tasks=pipeline_tasks,
        cold_tasks=cold_tasks,
        callback_tokens={t: issue_callback_token(t, settings, time.time()) for t in progress_tasks},
    )


def bench_runtime(enqueuer: queue.Enqueuer) -> Runtime:
    """A runtime of this process's environment (the stack's), steps handed to ``enqueuer``."""
    settings = config.load_settings()
    clock = SystemClock()
    return Runtime(
        settings=settings,
        db=Database(db.create_engine(settings)),
        enqueuer=enqueuer,
        providers=ProviderRegistry.of(SimulatedProvider(clock=clock.time)),
        clock=clock,
    )


@dataclass(frozen=True)
class HotPath:
    key: str
    name: str
    method: str
    paths: list[str]
    headers: list[dict[str, str]]
    body: bytes = b""
    target_ratio: float | None = None
    reference: bool = False

    def requests(self) -> list[bytes]:
        return [
            build_request(self.method, p, headers=h, body=self.body)
            for p, h in zip(self.paths, self.headers, strict=True)
        ]


def hot_paths(fx: Fixtures) -> list[HotPath]:
    bearer = {"Authorization": f"Bearer {fx.bench_token}"}
    return [
        HotPath(
            "progress",
            "progress callback (POST /api/v1/tasks/{id}/progress)",
            "POST",
            [f"/api/v1/tasks/{t}/progress" for t in fx.progress_tasks],
            [
                {"Authorization": f"Bearer {fx.callback_tokens[t]}", "Content-Type": "application/json"}
                for t in fx.progress_tasks
            ],
            PROGRESS_BODY,
            target_ratio=0.6,
        ),
        HotPath(
            "get_task",
            "GET /api/v1/tasks/{id}",
            "GET",
            [f"/api/v1/tasks/{t}" for t in fx.read_tasks],
            [bearer] * len(fx.read_tasks),
        ),
        HotPath(
            "active",
            "active tasks (GET /api/v1/dashboard/active-tasks)",
            "GET",
            ["/api/v1/dashboard/active-tasks"],
            [bearer],
            target_ratio=0.6,
        ),
        HotPath(
            "metrics",
            "metrics (GET /api/v1/dashboard/metrics)",
            "GET",
            ["/api/v1/dashboard/metrics"],
            [bearer],
            target_ratio=0.6,
        ),
        HotPath("healthz", "reference: GET /healthz (router + SELECT 1)", "GET", ["/healthz"], [{}], reference=True),
    ]


# --- 1. load ----------------------------------------------------------------------------------------


def sessions(url: str | None) -> int:
    """Connections PostgreSQL has accepted so far (pg_stat_database.sessions, PostgreSQL 14+)."""
    if url is None:
        return 0
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT sum(sessions) FROM pg_stat_database")).scalar_one() or 0)
    finally:
        engine.dispose()


def load_run(
    name: str,
    port: int,
    requests: list[bytes],
    opts: Options,
    server_pid: int,
    pg_pid: int | None,
    url: str | None = None,
) -> dict[str, Any]:
    sessions_before = sessions(url)
    server_before = tree_cpu_seconds(server_pid)
    pg_before = tree_cpu_seconds(pg_pid) if pg_pid else 0.0
    result = run_load(name, port, requests, connections=CONNECTIONS, duration=opts.duration, warmup=opts.warmup)
    server_cpu = tree_cpu_seconds(server_pid) - server_before
    pg_cpu = (tree_cpu_seconds(pg_pid) - pg_before) if pg_pid else 0.0
    # Counters cover warm-up and drain too: charge them to every request answered meanwhile.
    served = max(1, round(result.rps * (opts.duration + opts.warmup)))
    # (minus the one connection this measurement opens itself)
    opened = max(0, sessions(url) - sessions_before - 1) if url else 0
    return summarize_load(result) | {
        "server_cpu_ms": 1000 * server_cpu / served,
        "pg_cpu_ms": 1000 * pg_cpu / served,
        "connections_per_100": 100 * opened / served,
    }


def summarize_load(result: LoadResult) -> dict[str, Any]:
    return {
        "rps": result.rps,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "requests": result.requests,
        "statuses": {str(k): v for k, v in result.statuses.items()},
        "errors": result.errors,
        "client_cpu_share": result.client_cpu_share,
        "client_cpu_us": 1e6 * result.client_cpu_seconds / max(1, result.requests),
    }


def first_status(port: int, path: HotPath) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(path.method, path.paths[0], body=path.body or None, headers=path.headers[0])
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def measure_load(
    stack: LocalStack, servers: dict[str, tuple[int, subprocess.Popen[bytes]]], paths: list[HotPath], opts: Options
) -> dict[str, Any]:
    """Interleaved rounds: hello, then each path on the shipped server and on the candidate server."""
    assert stack.functions is not None
    pg_pid = postmaster_pid(pathlib.Path(stack.server.pgdata)) if stack.server is not None else None
    url = stack.database_url
    statuses = {p.key: first_status(stack.port, p) for p in paths}
    cand_port, cand_process = servers["candidates"]
    statuses |= {f"{p.key}+c": first_status(cand_port, p) for p in paths}
    log("first answers: " + ", ".join(f"{k} {v}" for k, v in statuses.items()))
    hello_port, hello = servers["hello"]
    plan: list[tuple[str, int, int, list[bytes]]] = [("hello", hello_port, hello.pid, [build_request("GET", "/")])]
    for path in paths:
        plan.append((path.key, stack.port, stack.functions.pid, path.requests()))
        plan.append((f"{path.key}+c", cand_port, cand_process.pid, path.requests()))
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key, *_ in plan}
    for rep in range(opts.reps):
        for key, port, pid, requests in plan:
            run = load_run(
                key, port, requests, opts, pid, pg_pid if key != "hello" else None, url if key != "hello" else None
            )
            runs[key].append(run)
            log(f"round {rep + 1}/{opts.reps}: {key} {run['rps']:.0f} req/s, statuses {run['statuses']}")
    return {"runs": runs, "first_status": statuses}


def generator_check(env: dict[str, str], opts: Options) -> dict[str, Any]:
    """The generator against a two-worker hello: what it can drive, and what it costs."""
    port = free_port()
    process = start_function(ROOT / "dev" / "bench_hello.py", "hello", port, env | {"WORKERS": "2"})
    try:
        wait_answering(port)
        result = run_load("hello x2", port, [build_request("GET", "/")], duration=opts.duration, warmup=opts.warmup)
        return summarize_load(result) | {"workers": 2}
    finally:
        stop_process(process)


# --- 3. database ceiling and round trips ------------------------------------------------------------


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
    elapsed = time.perf_counter() - begun
    if errors:
        raise errors[0]
    flat = [x for lat in latencies for x in lat]
    return len(flat) / elapsed, flat


def database_ceiling(fx: Fixtures, opts: Options) -> dict[str, Any]:
    """The progress write and the task read as the services do them, 8 threads in this process, no HTTP."""
    from common.services.progress import post_progress
    from common.services.tasks import get_task

    update = ProgressCallback(message="bench progress", progress_percent=50)
    write_tasks = [uuid.UUID(t) for t in fx.progress_tasks]
    read_tasks = [uuid.UUID(t) for t in fx.read_tasks]
    settings = dataclasses.replace(config.load_settings(), db_pool_size=DB_THREADS, db_max_overflow=0)
    no_flush = db.create_engine(settings)
    shipped = bench_runtime(Recorder())
    current = [shipped]

    @sa.event.listens_for(no_flush, "do_connect")
    def _no_flush(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        cparams["startup_params"] = {"synchronous_commit": "off"}

    def write(i: int) -> None:
        post_progress(current[0], write_tasks[i], update)

    def read(i: int) -> None:
        get_task(current[0], read_tasks[i], fx.bench_user)

    # (label, work, engine to use instead of the process engine, pg8000's own placeholder rewrite?)
    variants: list[tuple[str, Callable[[int], None], sa.Engine | None, bool]] = [
        ("progress write, as shipped", write, None, False),
        ("progress write, commits not waiting for the WAL flush (synchronous_commit off)", write, no_flush, False),
        ("task read, as shipped", read, None, False),
    ]
    if cand.paramstyle_cached():
        variants += [
            ("progress write, without the placeholder-rewrite cache (pg8000's own scan)", write, None, True),
            ("task read, without the placeholder-rewrite cache (pg8000's own scan)", read, None, True),
        ]
    results: dict[str, dict[str, Any]] = {name: {"runs": [], "p50_ms": []} for name, *_ in variants}
    seconds = max(2.0, opts.duration * 0.8)
    for _ in range(opts.reps):
        for name, work, engine, uncached in variants:
            if engine is not None:
                current[0] = dataclasses.replace(shipped, db=Database(engine))
            if uncached:
                cand.uncached_paramstyle()
            try:
                work(0)  # connect outside the measured loop
                rate, latencies = _threads_loop(work, DB_THREADS, seconds)
            finally:
                current[0] = shipped
                cand.undo()
            results[name]["runs"].append(rate)
            results[name]["p50_ms"].append(percentile(latencies, 50) * 1000)
    no_flush.dispose()
    return {"threads": DB_THREADS, "pool": DB_THREADS, "variants": results}


def explain(url: str, captured: list[tuple[str, Any, Any]]) -> dict[str, float]:
    """Planning and execution time PostgreSQL reports for the statements of one request (rolled back)."""
    engine = sa.create_engine(url, pool_size=1, max_overflow=0)
    rounds: list[tuple[float, float]] = []
    try:
        with engine.connect() as conn:
            raw: Any = conn.connection.dbapi_connection
            for _ in range(4):  # the first round warms this backend's catalog caches; the rest count
                planning = execution = 0.0
                raw.execute_simple("BEGIN")  # EXPLAIN ANALYZE runs writes: keep them uncommitted
                for statement, vals, oids in captured:
                    if statement.split()[0].upper() in ("BEGIN", "COMMIT", "ROLLBACK", "SET"):
                        continue
                    context = raw.execute_unnamed(
                        "EXPLAIN (ANALYZE, SUMMARY, FORMAT JSON) " + statement, vals=vals, oids=oids
                    )
                    plan = context.rows[0][0]
                    plan = json.loads(plan) if isinstance(plan, str) else plan
                    planning += plan[0]["Planning Time"]
                    execution += plan[0]["Execution Time"]
                raw.execute_simple("ROLLBACK")
                rounds.append((planning, execution))
    finally:
        engine.dispose()
    return {"planning_ms": median([r[0] for r in rounds[1:]]), "execution_ms": median([r[1] for r in rounds[1:]])}


def count_round_trips(fx: Fixtures, paths: list[HotPath], url: str, *, first_sight: bool = True) -> dict[str, Any]:
    """Round trips and statements of one warm request per hot path, through the gateway in-process."""
    from dev.gateway import create_app

    rt = bench_runtime(Recorder())
    client = create_app(rt).test_client()
    counter = RoundTripCounter()
    counter.install()
    found: dict[str, Any] = {}
    try:
        for path in paths:
            paramstyle: list[float] = []
            for i in (1, 2, 3, 4, 5, 6, 0):  # two warm-ups (user cache, pool, dialect), then counted ones
                with counter.measure() as counts:
                    response = client.open(
                        path.paths[i % len(path.paths)],
                        method=path.method,
                        headers=path.headers[i % len(path.headers)],
                        data=path.body,
                    )
                paramstyle.append(counts.paramstyle_seconds)
            found[path.key] = {
                "trips": counts.trips,
                "statements": describe_statements(counts.statements),
                "status": response.status_code,
                "sql_chars": counts.sql_chars,
                "paramstyle_ms": median(paramstyle[2:]) * 1000,
            }
            found[path.key] |= explain(url, counts.captured)
        if first_sight:
            # A user's first request on an instance also upserts the user row.
            client = create_app(dataclasses.replace(rt)).test_client()  # a fresh instance: no user known
            read = paths[1]
            with counter.measure() as counts:
                client.open(read.paths[0], method="GET", headers=read.headers[0])
            found["get_task_first_sight"] = {
                "trips": counts.trips,
                "statements": describe_statements(counts.statements),
            }
    finally:
        counter.uninstall()
    return found


def cpu_items(fx: Fixtures) -> dict[str, float]:
    """Microseconds per call of the per-request work outside the database, single thread, in-process."""
    from common.services.tasks import read_task, to_task

    def per_call(fn: Callable[[], Any], n: int = 1000) -> float:
        fn()
        started = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - started) / n * 1e6

    task_id = fx.progress_tasks[0]
    rt = bench_runtime(Recorder())
    row = rt.db.statement(lambda conn: read_task(conn, uuid.UUID(fx.read_tasks[0]), fx.bench_user))
    task = to_task(row)
    body = PROGRESS_BODY
    return {
        "verify a user token (PyJWT, HS256)": per_call(lambda: rt.tokens.user(fx.bench_token)),
        "verify a callback token (PyJWT, HS256)": per_call(
            lambda: rt.tokens.callback(fx.callback_tokens[task_id], task_id)
        ),
        "parse + validate the progress body (json + pydantic)": per_call(
            lambda: ProgressCallback.model_validate(json.loads(body))
        ),
        "to_task(row): build the pydantic Task with its steps": per_call(lambda: to_task(row)),
        "serialize it as common/http.py does (model_dump(mode='json') + json.dumps)": per_call(
            lambda: json.dumps(task.model_dump(mode="json"), separators=(",", ":"))
        ),
        "serialize it with model_dump_json() (pydantic-core)": per_call(task.model_dump_json),
    }


def db_primitives(url: str) -> dict[str, float]:
    """What one round trip and one durable commit cost here: single thread, pg8000, autocommit."""
    engine = cand.autocommit_engine(url, 1)
    found: dict[str, float] = {}
    try:
        with engine.connect() as conn:
            raw: Any = conn.connection.dbapi_connection
            cursor = raw.cursor()

            def p50(fn: Callable[[], Any], n: int) -> float:
                times = []
                for _ in range(n):
                    started = time.perf_counter()
                    fn()
                    times.append(time.perf_counter() - started)
                return median(times) * 1000

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
            cursor.execute("RESET synchronous_commit")
        # What a pool that closes an overflow connection pays to open one again (locally: no TLS).
        fresh = sa.create_engine(url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")

        def connect_and_query() -> None:
            with fresh.connect() as conn:
                conn.exec_driver_sql("SELECT 1")

        found["open a new connection and run SELECT 1 (SQLAlchemy + pg8000, unix socket, no TLS)"] = p50(
            connect_and_query, 60
        )
        fresh.dispose()
        # pg8000 builds ssl.create_default_context() (loading the system CA store) and sends an
        # SSLRequest on every connect unless ssl_context=False, even on a unix socket.
        fresh = sa.create_engine(
            url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT", connect_args={"ssl_context": False}
        )
        found["the same with connect_args ssl_context=False (no SSL context built, no SSLRequest)"] = p50(
            connect_and_query, 60
        )
        fresh.dispose()
    finally:
        engine.dispose()
    return found


# --- 4. pipeline overhead ----------------------------------------------------------------------------


class TimedProvider:
    """Wraps the simulated provider (zero seconds per step) and keeps its time apart."""

    def __init__(self) -> None:
        self.inner = SimulatedProvider(clock=time.time)
        self.seconds = 0.0

    def run(self, ctx: StepContext) -> StepOutcome | HandedOff:
        started = time.perf_counter()
        try:
            return self.inner.run(ctx)
        finally:
            self.seconds = time.perf_counter() - started

    def check(self, ctx: StepContext) -> StepOutcome | HandedOff:
        return self.inner.check(ctx)


@contextlib.contextmanager
def timed_phases(module: Any, names: list[str], into: dict[str, float]) -> Iterator[None]:
    """Wrap module-level functions to time them (bench process only); restored on exit."""
    originals = {name: getattr(module, name) for name in names}

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                into[name] = into.get(name, 0.0) + time.perf_counter() - started

        return timed

    for name, fn in originals.items():
        setattr(module, name, wrap(name, fn))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(module, name, fn)


def pipeline_overhead(tasks: list[str], sink: Sink | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Steps of half the tasks as shipped and of the other half with the candidates, task by task in turn."""
    from common.services import steps as step_service

    rt = bench_runtime(Recorder())
    counter = RoundTripCounter()
    counter.install()
    provider = TimedProvider()
    rows: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    try:
        for i, task in enumerate(tasks):
            candidate = i % 2 == 1
            if candidate:
                cand.apply()
            try:
                for step in STEPS:
                    phases: dict[str, float] = {}
                    with (
                        timed_phases(step_service, ["_claim", "_record", "after_commit"], phases),
                        counter.measure() as counts,
                    ):
                        started = time.perf_counter()
                        result = step_service.run_step(rt, uuid.UUID(task), step.name, provider)
                        total = time.perf_counter() - started
                    rows[candidate].append(
                        {
                            "step": step.name,
                            "outcome": result.outcome,
                            "total_ms": total * 1000,
                            "provider_ms": provider.seconds * 1000,
                            "own_ms": (total - provider.seconds) * 1000,
                            "claim_ms": phases.get("_claim", 0) * 1000,
                            "record_ms": phases.get("_record", 0) * 1000,
                            "handover_ms": phases.get("after_commit", 0) * 1000,
                            "trips": counts.trips,
                            "statements": describe_statements(counts.statements),
                        }
                    )
            finally:
                if candidate:
                    cand.undo()
    finally:
        counter.uninstall()
    shipped = _pipeline_summary(rows[False])
    shipped["enqueue"] = real_enqueue(sink) if sink is not None else None
    return shipped, _pipeline_summary(rows[True])


def _pipeline_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "steps": len(rows),
        "outcomes": sorted({r["outcome"] for r in rows}),
        **{
            f"{k}_p50": median([r[k] for r in rows])
            for k in ("total_ms", "own_ms", "provider_ms", "claim_ms", "record_ms", "handover_ms")
        },
        "own_ms_p99": percentile([r["own_ms"] for r in rows], 99),
        "trips_median": median([r["trips"] for r in rows]),
        "trips_by_step": {r["step"]: r["trips"] for r in rows[: len(STEPS)]},
        "statements_middle_step": rows[1]["statements"] if len(rows) > 1 else "",
        "statements_last_step": rows[len(STEPS) - 1]["statements"] if len(rows) >= len(STEPS) else "",
    }


def real_enqueue(sink: Sink) -> dict[str, Any]:
    """The Cloud Tasks client against the local stand-in: first call, then warm calls, and delivery."""
    enqueuer = queue.CloudTasksEnqueuer(config.load_settings())
    base = str(uuid.uuid4())
    started = time.perf_counter()
    enqueuer.enqueue_step(base, "creating_org", 0)
    first = time.perf_counter() - started
    calls: list[float] = []
    sent: dict[str, float] = {}
    for i in range(1, 21):
        started = time.perf_counter()
        enqueuer.enqueue_step(base, "creating_org", i)
        done = time.perf_counter()
        calls.append(done - started)
        sent[queue.task_name(base, "creating_org", i)] = done
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline and not all(name in sink.arrivals for name in sent):
        time.sleep(0.05)
    delivery = [sink.arrivals[n] - t for n, t in sent.items() if n in sink.arrivals]
    return {
        "first_call_ms": first * 1000,
        "call_p50_ms": median(calls) * 1000,
        "delivery_p50_ms": median(delivery) * 1000 if delivery else None,
        "delivered": len(delivery),
    }


# --- 5. cold start -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    label: str
    source: str
    target: str
    method: str
    path: str
    headers: dict[str, str]
    body: str = ""


def cold_probes(fx: Fixtures, run: int) -> list[Probe]:
    bench = {"Authorization": f"Bearer {fx.bench_token}"}
    worker = {"Authorization": f"Bearer {fx.worker_token}", "Content-Type": "application/json"}
    step = step_body(fx.cold_tasks[run], STEPS[0].name, 0).decode()
    signed = {SIGNATURE_HEADER: sign_body(step.encode(), fx.step_secret), "Content-Type": "application/json"}
    tick = {SIGNATURE_HEADER: sign_body(b"{}", fx.step_secret), "Content-Type": "application/json"}
    task = fx.progress_tasks[0]
    callback = {"Authorization": f"Bearer {fx.callback_tokens[task]}", "Content-Type": "application/json"}
    main = "main.py"
    hello = "dev/bench_hello.py"
    return [
        Probe("hello (functions-framework only)", hello, "hello", "GET", "/", {}),
        Probe("minimal (ff + SQLAlchemy + pg8000, SELECT 1)", hello, "minimal", "GET", "/", {}),
        Probe(
            "api_projects",
            main,
            "api_projects",
            "POST",
            "/api/v1/projects",
            worker,
            json.dumps({"project_name": f"cold start project {run}-{uuid.uuid4().hex[:6]}"}),
        ),
        Probe("api_tasks", main, "api_tasks", "GET", f"/api/v1/tasks/{fx.read_tasks[0]}", bench),
        Probe(
            "progress_callback",
            main,
            "progress_callback",
            "POST",
            f"/api/v1/tasks/{task}/progress",
            callback,
            PROGRESS_BODY.decode(),
        ),
        Probe("dashboard", main, "dashboard", "GET", "/api/v1/dashboard/active-tasks", bench),
        Probe("pipeline_step", main, "pipeline_step", "POST", "/internal/steps", signed, step),
        Probe("scheduler_tick", main, "scheduler_tick", "POST", "/internal/scheduler/tick", tick, "{}"),
        Probe("healthz", main, "healthz", "GET", "/healthz", {}),
        Probe("openapi", main, "openapi", "GET", "/openapi.json", {}),
    ]


def start_to_first_answer(probe: Probe, env: dict[str, str]) -> dict[str, Any]:
    port = free_port()
    started = time.perf_counter()
    process = start_function(ROOT / probe.source, probe.target, port, env)
    listening: float | None = None
    try:
        deadline = started + 60
        while time.perf_counter() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                conn.connect()
            except ConnectionRefusedError:
                conn.close()
                time.sleep(0.005)
                continue
            listening = time.perf_counter() - started
            conn.request(probe.method, probe.path, body=probe.body.encode() or None, headers=probe.headers)
            response = conn.getresponse()
            response.read()
            answered = time.perf_counter() - started
            conn.close()
            return {"status": response.status, "first_answer_s": answered, "listening_s": listening}
        raise TimeoutError(f"{probe.label} did not answer")
    finally:
        stop_process(process)


def cold_start(fx: Fixtures, env: dict[str, str], opts: Options) -> dict[str, Any]:
    start_to_first_answer(cold_probes(fx, 0)[-2], env)  # warm the page cache and the bytecode
    results: dict[str, list[dict[str, Any]]] = {}
    for run in range(1, opts.cold_runs + 1):
        for probe in cold_probes(fx, run):
            results.setdefault(probe.label, []).append(start_to_first_answer(probe, env))
        log(f"cold starts: round {run}/{opts.cold_runs} done")
    return results


def import_probes(fx: Fixtures, env: dict[str, str]) -> dict[str, Any]:
    """Per deployed function, in a fresh interpreter: import time, first request, heavy modules."""
    found: dict[str, Any] = {}
    for probe in cold_probes(fx, 0):
        if probe.source != "main.py":
            continue
        spec = {
            "function": probe.target,
            "method": probe.method,
            "path": probe.path,
            "headers": probe.headers,
            "body": probe.body,
        }
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "dev.bench_probe", json.dumps(spec)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        lines = done.stdout.strip().splitlines()
        try:
            info = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            info = {"error": (done.stderr or "")[-400:]}
        info["top_imports"] = [asdict(c) for c in prof.import_costs(done.stderr)[:6]]
        found[probe.target] = info
    return found


def _importtime(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.stderr


def import_time_main(env: dict[str, str]) -> dict[str, Any]:
    """`import main` against the minimal function's imports, and the heavy client libraries alone."""
    main_trace = _importtime("import main", env)
    minimal_trace = _importtime("import functions_framework, sqlalchemy, pg8000", env)
    main_costs = {c.package: c for c in prof.import_costs(main_trace)}
    minimal_costs = {c.package: c.self_ms for c in prof.import_costs(minimal_trace)}
    beyond = sorted(
        ((p, c.self_ms - minimal_costs.get(p, 0.0), c.modules) for p, c in main_costs.items()),
        key=lambda x: -x[1],
    )
    heavy = {}
    for module in ("google.cloud.tasks_v2", "google.cloud.sql.connector", "aiohttp", "pydantic", "jwt"):
        trace = _importtime(f"import {module}", env)
        heavy[module] = {
            "cumulative_ms": prof.import_cumulative(trace, module),
            "aiohttp_ms": prof.import_cumulative(trace, "aiohttp") if module != "aiohttp" else None,
            "cryptography_ms": prof.import_cumulative(trace, "cryptography"),
        }
    return {
        "main_cumulative_ms": prof.import_cumulative(main_trace, "main"),
        "main_total_ms": sum(c.self_ms for c in main_costs.values()),
        "minimal_total_ms": sum(minimal_costs.values()),
        "top": [asdict(c) for c in prof.import_costs(main_trace)[:12]],
        "beyond_minimal": [{"package": p, "extra_ms": ms, "modules": n} for p, ms, n in beyond[:12] if ms > 1],
        "heavy": heavy,
    }


# --- 6. profiles ----------------------------------------------------------------------------------------


def profiles(
    stack: LocalStack, servers: dict[str, tuple[int, subprocess.Popen[bytes]]], paths: list[HotPath], opts: Options
) -> dict[str, Any]:
    if prof.py_spy() is None:
        return {"skipped": "py-spy is not installed (pip install -r requirements-dev.txt)"}
    assert stack.functions is not None
    hello_port, hello = servers["hello"]
    cand_port, cand = servers["candidates"]
    targets = [("hello", hello_port, hello.pid, [build_request("GET", "/")])]
    for p in paths:
        targets.append((p.key, stack.port, stack.functions.pid, p.requests()))
        targets.append((f"{p.key}+c", cand_port, cand.pid, p.requests()))
    found: dict[str, Any] = {}
    rate = 250
    for key, port, pid, requests in targets:
        output = WORK_DIR / f"profile-{key}.raw"
        output.unlink(missing_ok=True)
        sampler = prof.start_profile(pid, output, opts.profile_seconds, rate)
        time.sleep(0.3)  # let py-spy attach before the load starts
        result = run_load(key, port, requests, duration=opts.profile_seconds, warmup=0.2)
        try:
            sampler.wait(30)
        except subprocess.TimeoutExpired:
            sampler.kill()
        profile = prof.parse(output)
        found[key] = {
            "samples": profile.samples,
            "rps_while_sampled": result.rps,
            "gil_ms_per_request": 1000 * profile.samples / rate / max(1, result.rps * opts.profile_seconds),
            "by_owner": [(k, profile.share(profile.by_owner, k)) for k, _ in profile.by_owner.most_common(12)],
            "planter": [
                (k, profile.share(profile.planter_inclusive, k)) for k, _ in profile.planter_inclusive.most_common(14)
            ],
            "leaf": [(k, profile.share(profile.leaf_lines, k)) for k, _ in profile.leaf_lines.most_common(12)],
        }
        log(f"profiled {key}: {profile.samples} samples")
    return found


# --- machine ---------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, IndexError, ValueError):
        kb = int(pathlib.Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.1f} GiB"
    from importlib.metadata import version

    packages = {}
    for name in ("functions-framework", "gunicorn", "flask", "sqlalchemy", "pg8000", "pydantic", "pyjwt", "pgserver"):
        with contextlib.suppress(Exception):
            packages[name] = version(name)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": packages,
        "load_before": os.getloadavg(),
    }


# --- the run ---------------------------------------------------------------------------------------------


def main() -> None:
    opts = parse_args()
    started = time.monotonic()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    settings = server_settings()
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "settings": settings
        | {
            "connections": CONNECTIONS,
            "reps": opts.reps,
            "duration_s": opts.duration,
            "warmup_s": opts.warmup,
            "rows": opts.rows,
        },
        "command": " ".join(["python -m dev.bench", *sys.argv[1:]]),
    }
    data_dir = pathlib.Path(tempfile.mkdtemp(prefix="pb", dir="/tmp"))
    sink = Sink()
    stack = LocalStack(
        data_dir=data_dir,
        port=free_port(),
        quiet=True,
        env_overrides=settings | {"STEP_URL": sink.url, "STEP_TIMEOUT_SECONDS": "30"},
    )
    servers: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
    try:
        stack.start_postgres()
        stack.start_queue()
        env = stack.env()
        # This process: the same secrets and database, its own pool for the database ceiling.
        for key in (
            "DATABASE_URL",
            "JWT_SECRET",
            "STEP_SIGNING_SECRET",
            "PLANTER_ENV",
            "STEP_PROVIDER",
            "STEP_URL",
            "STEP_TIMEOUT_SECONDS",
        ):
            os.environ[key] = env[key]
        os.environ["CLOUD_TASKS_ENDPOINT"] = env["CLOUD_TASKS_ENDPOINT"]
        os.environ["DB_POOL_SIZE"], os.environ["DB_MAX_OVERFLOW"] = str(DB_THREADS), "0"
        with engine_for(stack.database_url) as engine:
            log(f"seeding {opts.rows:,} tasks")
            seeded = seed(engine, total_tasks=opts.rows)
            log(f"seeded in {seeded.seconds:.0f} s")
            results["seed"] = asdict(seeded) | {"bench_user": str(seeded.bench_user)}
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "INSERT INTO subscriptions (user_id, tier, monthly_operations_limit) "
                        "SELECT id, 'enterprise', -1 FROM users WHERE email = :e"
                    ),
                    {"e": WORKER_EMAIL},
                )
            fx = prepare(engine, seeded, opts)
            with engine.connect() as conn:
                results["postgres"] = conn.execute(sa.text("SHOW server_version")).scalar_one()
        stack.start_functions()
        for name, (source, target) in {
            "hello": ("dev/bench_hello.py", "hello"),
            "candidates": ("dev/bench_gateway_candidates.py", "gateway"),
        }.items():
            port = free_port()
            servers[name] = (port, start_function(ROOT / source, target, port, env))
        for port, _ in servers.values():
            wait_answering(port)
        paths = hot_paths(fx)
        log(f"stack up; settings {settings}; measuring load ({opts.reps} rounds)")
        results["load"] = measure_load(stack, servers, paths, opts)
        results["paths"] = {
            p.key: {"name": p.name, "target_ratio": p.target_ratio, "reference": p.reference} for p in paths
        }
        log("generator check")
        results["generator_check"] = generator_check(env, opts)
        log("round trips and database ceiling")
        results["round_trips"] = count_round_trips(fx, paths, stack.database_url)
        results["db_ceiling"] = database_ceiling(fx, opts)
        results["db_primitives"] = db_primitives(stack.database_url)
        results["cpu_items"] = cpu_items(fx)
        log("pipeline overhead")
        results["pipeline"], results["pipeline_candidates"] = pipeline_overhead(fx.pipeline_tasks, sink)
        log("profiles")
        results["profiles"] = profiles(stack, servers, paths, opts)
        for _, process in servers.values():
            stop_process(process)
        servers.clear()
        stop_process(stack.functions)
        stack.functions = None
        # The candidates in this process too (after every in-process measurement of the shipped code).
        cand.apply()
        results["round_trips_candidates"] = count_round_trips(fx, paths, stack.database_url, first_sight=False)
        cand.undo()
        log("cold starts")
        results["cold_start"] = cold_start(fx, env, opts)
        results["import_probes"] = import_probes(fx, env)
        results["import_main"] = import_time_main(env)
    finally:
        for _, process in servers.values():
            stop_process(process)
        stack.stop()
        sink.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    results["machine"]["load_after"] = os.getloadavg()
    results["elapsed_s"] = time.monotonic() - started
    (WORK_DIR / "results.json").write_text(json.dumps(results, indent=2, default=str))
    text = write_report(results, ROOT / "BENCHMARKS.md", write=opts.write)
    print(text)
    log(f"done in {results['elapsed_s']:.0f} s" + ("; BENCHMARKS.md written" if opts.write else ""))


@contextlib.contextmanager
def engine_for(url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
