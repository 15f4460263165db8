"""`make bench`: the hot paths against the framework's own ceiling, the engine beside its peer.

    python -m dev.bench            # the full run (~10 minutes), writes BENCHMARKS.md's tables
    python -m dev.bench --quick    # a smoke run (100k tasks, one short round), writes nothing
    WORKERS=2 THREADS=8 DB_POOL_SIZE=4 python -m dev.bench   # other server settings

What is measured, and how, is written in BENCHMARKS.md (the hand-written part); raw results go
to .local/bench/results.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import sqlalchemy as sa

from common import queue
from common.auth import SIGNATURE_HEADER, issue_callback_token, sign_body
from common.config import Settings, load_settings
from common.pipeline import STEPS
from common.services import users
from dev import bench_inproc as inproc
from dev import bench_peer as peer
from dev import pg
from dev.bench_report import write_report
from dev.bench_seed import BENCH_EMAIL, WORKER_EMAIL, seed
from dev.bench_util import (
    build_request,
    import_cumulative_ms,
    import_self_ms,
    median,
    owner_shares,
    py_spy,
    run_load,
    start_function,
    start_profile,
    stop_process,
    tree_cpu_seconds,
    wait_answering,
)
from dev.stack import ROOT, LocalStack, free_port
from dev.token import user_token

WORK_DIR = ROOT / ".local" / "bench"
CONNECTIONS = 16
TRACED_TASKS = 20  # the peer's drain whose libpq trace counts its round trips and statements
BODY = json.dumps({"message": "bench progress", "progress_percent": 50}).encode()  # a progress callback's
JSON = {"Content-Type": "application/json"}
ACTIVE = "/api/v1/dashboard/active-tasks"


@dataclass
class Options:
    reps: int = 3
    duration: float = 4.0
    warmup: float = 1.0
    rows: int = 1_000_000
    cold_runs: int = 5
    profile_seconds: float = 4.0
    engine_tasks: int = 200
    write: bool = True


def parse_args() -> Options:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: small, short, writes no BENCHMARKS.md")
    parser.add_argument("--reps", type=int, help="interleaved rounds (medians are quoted)")
    parser.add_argument("--rows", type=int, help="tasks in the database")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite BENCHMARKS.md")
    args = parser.parse_args()
    opts = Options()
    if args.quick:
        opts = Options(1, 2, 0.5, 100_000, 1, 2, 20, write=False)
    opts.reps, opts.rows = args.reps or opts.reps, args.rows or opts.rows
    opts.write = opts.write and not args.no_write
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


class Sink:
    """Where the Cloud Tasks stand-in delivers steps: answers 200, remembers when each arrived."""

    def __init__(self) -> None:
        arrivals: dict[str, float] = {}
        self.arrivals = arrivals

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                arrivals[self.headers.get("X-CloudTasks-TaskName", "")] = time.perf_counter()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/internal/steps"
        threading.Thread(target=self.server.serve_forever, daemon=True, name="sink").start()


@dataclass(frozen=True)
class HotPath:
    key: str
    name: str
    method: str
    paths: list[str]
    headers: list[dict[str, str]]
    body: bytes = b""

    def requests(self) -> list[bytes]:
        pairs = zip(self.paths, self.headers, strict=True)
        return [build_request(self.method, p, headers=h, body=self.body) for p, h in pairs]


def hot_paths(token: str, progress_tasks: list[str], read_tasks: list[str]) -> list[HotPath]:
    bearer = {"Authorization": f"Bearer {token}"}
    callbacks = [
        {"Authorization": f"Bearer {issue_callback_token(t, load_settings(), time.time())}", **JSON}
        for t in progress_tasks
    ]
    progress = [f"/api/v1/tasks/{t}/progress" for t in progress_tasks]
    reads = [f"/api/v1/tasks/{t}" for t in read_tasks]
    return [
        HotPath("progress", "progress callback (POST /api/v1/tasks/{id}/progress)", "POST", progress, callbacks, BODY),
        HotPath("get_task", "GET /api/v1/tasks/{id}", "GET", reads, [bearer] * len(reads)),
        HotPath("active", "active tasks (GET /api/v1/dashboard/active-tasks)", "GET", [ACTIVE], [bearer]),
        HotPath("metrics", "metrics (GET /api/v1/dashboard/metrics)", "GET", ["/api/v1/dashboard/metrics"], [bearer]),
        HotPath("healthz", "reference: GET /healthz (router + SELECT 1)", "GET", ["/healthz"], [{}]),
    ]


# --- HTTP load ---------------------------------------------------------------------------------------


def sessions(url: str) -> int:
    """Connections PostgreSQL has accepted so far (pg_stat_database.sessions)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        found = int(conn.execute(sa.text("SELECT sum(sessions) FROM pg_stat_database")).scalar_one() or 0)
    engine.dispose()
    return found


def load_run(port: int, requests: list[bytes], opts: Options, pid: int, pg_pid: int | None, url: str) -> dict[str, Any]:
    """One load run; CPU and new connections are charged to every request answered (warm-up too)."""
    before = (sessions(url), tree_cpu_seconds(pid), tree_cpu_seconds(pg_pid) if pg_pid else 0.0)
    result = run_load("", port, requests, connections=CONNECTIONS, duration=opts.duration, warmup=opts.warmup)
    served = max(1, round(result.rps * (opts.duration + opts.warmup)))
    pg_cpu = tree_cpu_seconds(pg_pid) - before[2] if pg_pid else 0.0
    return {
        "rps": result.rps,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "statuses": {str(k): v for k, v in result.statuses.items()},
        "client_cpu_share": result.client_cpu_share,
        "server_cpu_ms": 1000 * (tree_cpu_seconds(pid) - before[1]) / served,
        "pg_cpu_ms": 1000 * pg_cpu / served,
        # (minus the one connection the measurement opens itself)
        "connections_per_100": 100 * max(0, sessions(url) - before[0] - 1) / served if pg_pid else 0.0,
    }


def measure_load(stack: LocalStack, hello: tuple[int, int], paths: list[HotPath], opts: Options) -> dict[str, Any]:
    """Interleaved rounds: hello, then every path, so that drift hits the ceiling and the paths alike."""
    assert stack.functions is not None and stack.server is not None
    pg_pid = int((pathlib.Path(stack.server.pgdata) / "postmaster.pid").read_text().split()[0])
    plan: list[tuple[str, int, int, int | None, list[bytes]]] = [("hello", *hello, None, [build_request("GET", "/")])]
    plan += [(p.key, stack.port, stack.functions.pid, pg_pid, p.requests()) for p in paths]
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key, *_ in plan}
    for rep in range(opts.reps):
        for key, port, pid, pg_for, requests in plan:
            runs[key].append(load_run(port, requests, opts, pid, pg_for, stack.database_url))
            log(f"round {rep + 1}/{opts.reps}: {key} {runs[key][-1]['rps']:.0f} req/s {runs[key][-1]['statuses']}")
    return runs


def generator_check(env: dict[str, str], opts: Options) -> dict[str, Any]:
    """The generator against a two-worker hello: what it can drive, and what it costs."""
    port = free_port()
    process = start_function(ROOT / "dev" / "bench_hello.py", "hello", port, env | {"WORKERS": "2"})
    try:
        wait_answering(port)
        result = run_load("hello x2", port, [build_request("GET", "/")], duration=opts.duration, warmup=opts.warmup)
        return {"rps": result.rps, "p50_ms": result.p50_ms, "client_cpu_share": result.client_cpu_share}
    finally:
        stop_process(process)


def profiles(targets: list[tuple[str, int, int, list[bytes]]], opts: Options) -> dict[str, Any]:
    """py-spy (GIL samples) on the serving process under each load: where a request's server CPU goes."""
    exe = py_spy()
    if exe is None:
        return {}
    found: dict[str, Any] = {}
    for key, port, pid, requests in targets:
        output = WORK_DIR / f"profile-{key}.raw"
        output.unlink(missing_ok=True)
        sampler = start_profile(exe, pid, output, opts.profile_seconds, 250)
        time.sleep(0.3)  # let py-spy attach before the load starts
        result = run_load(key, port, requests, duration=opts.profile_seconds, warmup=0.2)
        with contextlib.suppress(subprocess.TimeoutExpired):
            sampler.wait(30)
        samples, shares = owner_shares(output)
        found[key] = {"shares": shares, "gil_ms": 1000 * samples / 250 / max(1, result.rps * opts.profile_seconds)}
    return found


# --- the engine beside its peer (issue 13) ----------------------------------------------------------


def engine_rounds(stack: LocalStack, worker: users.User, opts: Options) -> dict[str, Any]:
    """Planter's engine and procrastinate on the same no-op pipeline, interleaved round by round."""
    pg.create_database(pg.url(stack.server), "peer")
    socket_dir = parse_qs(urlparse(stack.server.get_uri()).query)["host"][0]
    conninfo = f"host={socket_dir} dbname=peer user=postgres"
    python = peer.ensure_venv()
    trace = WORK_DIR / "peer.trace"
    trace.unlink(missing_ok=True)
    peer.run(python, conninfo, 5, len(STEPS))  # its schema, and a warm page cache
    peer.run(python, conninfo, TRACED_TASKS, len(STEPS), trace)  # counted apart: libpq's trace slows it down
    peer_trips, peer_statements = peer.count_trace(trace)
    planter = inproc.bench_runtime(stack.database_url)
    inproc.create_tasks(planter, worker, 5, "engine warm-up")
    inproc.drain(planter)
    rounds: dict[str, list[Any]] = {"planter": [], "peer": []}
    for rep in range(opts.reps):
        inproc.create_tasks(planter, worker, opts.engine_tasks, f"engine round {rep}")
        rounds["planter"].append(inproc.drain(planter))
        rounds["peer"].append(peer.run(python, conninfo, opts.engine_tasks, len(STEPS)))
        us, them = rounds["planter"][-1], rounds["peer"][-1]
        rates = us["steps"] / us["seconds"], them["steps"] / them["seconds"]
        log(f"engine round {rep + 1}: {rates[0]:.0f} steps/s, peer {rates[1]:.0f}")
    planter.rt.db.engine.dispose()
    # (the traced drain's worker start and stop are charged to its steps: a few statements in all)
    traced_steps = TRACED_TASKS * len(STEPS)
    return rounds | {
        "peer_trips": peer_trips / traced_steps,
        "peer_statements": peer_statements / traced_steps,
        "peer_version": rounds["peer"][0]["version"],
    }


def real_enqueue(settings: Settings, sink: Sink) -> dict[str, Any]:
    """The Cloud Tasks client against the local stand-in: first call, warm calls, and delivery."""
    enqueuer = queue.CloudTasksEnqueuer(settings)
    base = str(uuid.uuid4())
    started = time.perf_counter()
    enqueuer.enqueue_step(base, STEPS[0].name, 0)
    first, calls, sent = time.perf_counter() - started, [], {}
    for i in range(1, 21):
        started = time.perf_counter()
        enqueuer.enqueue_step(base, STEPS[0].name, i)
        calls.append(time.perf_counter() - started)
        sent[queue.task_name(base, STEPS[0].name, i)] = time.perf_counter()
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline and not all(name in sink.arrivals for name in sent):
        time.sleep(0.05)
    delivery = [sink.arrivals[n] - t for n, t in sent.items() if n in sink.arrivals]
    return {
        "first_call_ms": first * 1000,
        "call_p50_ms": median(calls) * 1000,
        "delivery_p50_ms": median(delivery) * 1000,
        "delivered": len(delivery),
    }


# --- cold starts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    label: str
    source: str
    target: str
    method: str
    path: str
    headers: dict[str, str]
    body: str = ""


def cold_probes(fx: Fixtures, step_task: str, secret: str) -> list[Probe]:
    """Each deployed function's own route, authenticated, touching the database; and the baselines."""
    task, read_task = fx.progress_tasks[0], fx.read_tasks[0]
    worker = {"Authorization": f"Bearer {fx.worker_token}", **JSON}
    bench = {"Authorization": f"Bearer {fx.token}"}
    step = queue.step_body(step_task, STEPS[0].name, 0).decode()
    signed = {SIGNATURE_HEADER: sign_body(step.encode(), secret), **JSON}
    tick = {SIGNATURE_HEADER: sign_body(b"{}", secret), **JSON}
    callback = {"Authorization": f"Bearer {issue_callback_token(task, load_settings(), time.time())}", **JSON}
    progress = f"/api/v1/tasks/{task}/progress"
    project = json.dumps({"project_name": f"cold start {uuid.uuid4().hex[:8]}"})
    hello, main = "dev/bench_hello.py", "main.py"
    return [
        Probe("hello (functions-framework only)", hello, "hello", "GET", "/", {}),
        Probe("minimal (ff + SQLAlchemy + pg8000, SELECT 1)", hello, "minimal", "GET", "/", {}),
        Probe("api_projects", main, "api_projects", "POST", "/api/v1/projects", worker, project),
        Probe("api_tasks", main, "api_tasks", "GET", f"/api/v1/tasks/{read_task}", bench),
        Probe("progress_callback", main, "progress_callback", "POST", progress, callback, BODY.decode()),
        Probe("dashboard", main, "dashboard", "GET", ACTIVE, bench),
        Probe("pipeline_step", main, "pipeline_step", "POST", "/internal/steps", signed, step),
        Probe("scheduler_tick", main, "scheduler_tick", "POST", "/internal/scheduler/tick", tick, "{}"),
        Probe("healthz", main, "healthz", "GET", "/healthz", {}),
        Probe("openapi", main, "openapi", "GET", "/openapi.json", {}),
    ]


def start_to_first_answer(probe: Probe, env: dict[str, str]) -> dict[str, Any]:
    """Process start → the first answer of a real request (polled every 5 ms)."""
    port = free_port()
    started = time.perf_counter()
    process = start_function(ROOT / probe.source, probe.target, port, env)
    try:
        while time.perf_counter() < started + 60:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                conn.connect()
            except ConnectionRefusedError:
                time.sleep(0.005)
                continue
            listening = time.perf_counter() - started
            conn.request(probe.method, probe.path, body=probe.body.encode() or None, headers=probe.headers)
            status = conn.getresponse().status
            conn.close()
            return {"status": status, "first_answer_s": time.perf_counter() - started, "listening_s": listening}
        raise TimeoutError(f"{probe.label} did not answer")
    finally:
        stop_process(process)


def cold_starts(probes: list[list[Probe]], env: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    start_to_first_answer(probes[0][-2], env)  # warm the page cache and the bytecode
    results: dict[str, list[dict[str, Any]]] = {}
    for run in probes:
        for probe in run:
            results.setdefault(probe.label, []).append(start_to_first_answer(probe, env))
    return results


def import_probes(probes: list[Probe], env: dict[str, str]) -> dict[str, Any]:
    """Per deployed function, in a fresh interpreter: import time, first request, heavy modules."""
    found: dict[str, Any] = {}
    for probe in (p for p in probes if p.source == "main.py"):
        spec = {"function": probe.target, "method": probe.method, "path": probe.path, "headers": probe.headers}
        command = [sys.executable, "-X", "importtime", "-m", "dev.bench_probe", json.dumps(spec | {"body": probe.body})]
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
        try:
            found[probe.target] = json.loads(done.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            found[probe.target] = {"error": done.stderr[-400:]}
        found[probe.target]["top_imports"] = list(import_self_ms(done.stderr).items())[:5]
    for label, code in (("main", "import main"), ("minimal", "import functions_framework, sqlalchemy, pg8000")):
        command = [sys.executable, "-X", "importtime", "-c", code]
        trace = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
        found[f"import {label}"] = {
            "total_ms": sum(import_self_ms(trace.stderr).values()),
            "main_ms": import_cumulative_ms(trace.stderr, "main"),
            "top": list(import_self_ms(trace.stderr).items())[:8],
        }
    return found


# --- the run -------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "unknown",
    )
    packages = ("functions-framework", "gunicorn", "flask", "sqlalchemy", "pg8000", "pydantic", "pyjwt", "pgserver")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": int(pathlib.Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {name: version(name) for name in packages},
        "load_before": os.getloadavg(),
    }


@dataclass
class Fixtures:
    reader: users.User  # the seeded user whose tasks are read
    worker: users.User  # creates the bench's own tasks
    token: str  # the reader's
    worker_token: str
    read_tasks: list[str]
    progress_tasks: list[str]  # progress callbacks go to these, in turn
    cold_tasks: list[str]  # one step delivery per cold start


def prepare(stack: LocalStack, fixture: inproc.Bench, opts: Options, results: dict[str, Any]) -> Fixtures:
    log(f"seeding {opts.rows:,} tasks")
    engine = sa.create_engine(stack.database_url, poolclass=sa.pool.NullPool)
    seeded = seed(engine, total_tasks=opts.rows)
    results["seed"] = {"tasks": seeded.total_tasks, "seconds": seeded.seconds, "step_rows": seeded.step_rows}
    newest = sa.text("SELECT id FROM tasks WHERE user_id = :u ORDER BY created_at DESC LIMIT 64")
    with engine.connect() as conn:
        read_tasks = [str(r[0]) for r in conn.execute(newest, {"u": seeded.bench_user})]
        results["postgres"] = conn.execute(sa.text("SHOW server_version")).scalar_one()
    engine.dispose()
    worker = users.User(seeded.worker_user, WORKER_EMAIL)
    return Fixtures(
        reader=users.User(seeded.bench_user, BENCH_EMAIL),
        worker=worker,
        token=user_token(BENCH_EMAIL),
        worker_token=user_token(WORKER_EMAIL),
        read_tasks=read_tasks,
        progress_tasks=inproc.create_tasks(fixture, worker, 64, "callback target"),
        cold_tasks=inproc.create_tasks(fixture, worker, opts.cold_runs, "cold start"),
    )


def measure_http(stack: LocalStack, env: dict[str, str], paths: list[HotPath], opts: Options) -> dict[str, Any]:
    """The load rounds, the generator check and the profiles, against the served functions."""
    stack.start_functions()
    assert stack.functions is not None
    port = free_port()
    hello = start_function(ROOT / "dev" / "bench_hello.py", "hello", port, env)
    try:
        wait_answering(port)
        log(f"stack up; {opts.reps} interleaved rounds of load")
        found = {"load": measure_load(stack, (port, hello.pid), paths, opts), "paths": {p.key: p.name for p in paths}}
        found["generator_check"] = generator_check(env, opts)
        log("profiles")
        targets = [("hello", port, hello.pid, [build_request("GET", "/")])]
        targets += [(p.key, stack.port, stack.functions.pid, p.requests()) for p in paths]
        return found | {"profiles": profiles(targets, opts)}
    finally:
        stop_process(hello)
        stop_process(stack.functions)
        stack.functions = None


def measure_in_process(
    stack: LocalStack, fixture: inproc.Bench, fx: Fixtures, paths: list[HotPath], opts: Options
) -> dict[str, Any]:
    log("in-process: round trips, database ceiling, per-request work")
    url = stack.database_url
    first_sight = HotPath(
        "first_sight",
        "GET task, a user's first request on an instance (user upsert)",
        "GET",
        [paths[1].paths[0]],
        [{"Authorization": f"Bearer {user_token(f'first-{i}@planter.dev')}"} for i in range(3)],
    )
    seconds = max(2.0, opts.duration * 0.8)
    callback = issue_callback_token(fx.progress_tasks[0], load_settings(), time.time())
    found = {
        "round_trips": inproc.round_trips(fixture, [*paths, first_sight], url),
        "db_ceiling": inproc.database_ceiling(
            url, fx.progress_tasks[:8], fx.read_tasks[:8], fx.reader, opts.reps, seconds
        ),
        "db_primitives": inproc.db_primitives(url),
        "cpu_items": inproc.cpu_items(fixture.rt, fx.token, fx.progress_tasks[0], callback, fx.read_tasks[0]),
    }
    log("the engine beside procrastinate")
    return found | {"engine": engine_rounds(stack, fx.worker, opts)}


def main() -> None:
    opts = parse_args()
    started = time.monotonic()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    settings = server_settings()
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "settings": settings | {"connections": CONNECTIONS, "reps": opts.reps, "duration_s": opts.duration},
        "command": " ".join(["python -m dev.bench", *sys.argv[1:]]),
    }
    data_dir = pathlib.Path(tempfile.mkdtemp(prefix="pb", dir="/tmp"))  # short: unix socket path limit
    sink = Sink()
    overrides = settings | {"STEP_URL": sink.url, "STEP_TIMEOUT_SECONDS": "30"}
    stack = LocalStack(data_dir=data_dir, port=free_port(), quiet=True, env_overrides=overrides)
    try:
        stack.start_postgres()
        stack.start_queue()
        env = stack.env()
        fixture = inproc.bench_runtime(stack.database_url)
        fx = prepare(stack, fixture, opts, results)
        paths = hot_paths(fx.token, fx.progress_tasks, fx.read_tasks)
        results |= measure_http(stack, env, paths, opts)
        results |= measure_in_process(stack, fixture, fx, paths, opts)
        fixture.rt.db.engine.dispose()
        queue_settings = Settings(tasks_endpoint=env["CLOUD_TASKS_ENDPOINT"], step_url=sink.url)
        results["enqueue"] = real_enqueue(queue_settings, sink)
        log("cold starts")
        secret = env["STEP_SIGNING_SECRET"]
        probes = [cold_probes(fx, t, secret) for t in fx.cold_tasks]
        results["cold_start"] = cold_starts(probes, env)
        results["imports"] = import_probes(probes[0], env)
    finally:
        stack.stop()
        sink.server.shutdown()
        shutil.rmtree(data_dir, ignore_errors=True)
    results["machine"]["load_after"] = os.getloadavg()
    results["elapsed_s"] = time.monotonic() - started
    (WORK_DIR / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(write_report(results, ROOT / "BENCHMARKS.md", write=opts.write))
    log(f"done in {results['elapsed_s']:.0f} s" + ("; BENCHMARKS.md written" if opts.write else ""))


if __name__ == "__main__":
    main()
