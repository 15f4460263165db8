"""The peer of `make bench`: the same no-op pipeline on procrastinate, the closest Postgres queue.

    <peer venv>/bin/python dev/bench_peer.py CONNINFO TASKS STEPS [--trace FILE]

Runs in its own virtualenv (.local/bench/peer-venv, made by `ensure_venv` from
dev/bench_peer_requirements.txt and reused), against its own database of the bench's PostgreSQL.
TASKS jobs are deferred, each job defers its task's next step, and one worker (concurrency 1, no
LISTEN/NOTIFY, polling off: it stops when the queue is empty) drains them. Prints one JSON line.

Only the standard library at module level: the bench imports `backend_cpu_seconds` from here too,
so that both sides measure PostgreSQL's CPU the same way (the backends' /proc/<pid>/stat).
"""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import subprocess
import sys
import time
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
VENV = HERE.parent / ".local" / "bench" / "peer-venv"
REQUIREMENTS = HERE / "bench_peer_requirements.txt"
_TICK = os.sysconf("SC_CLK_TCK")


def backend_cpu_seconds(pids: list[int]) -> float:
    """utime + stime of PostgreSQL backends (same machine, same user), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a backend that ended meanwhile
        total += int(fields[11]) + int(fields[12])
    return total / _TICK


def ensure_venv() -> pathlib.Path:
    """The peer's interpreter, installed on first use from the pinned requirements."""
    python = VENV / "bin" / "python"
    stamp = VENV / "requirements.txt"
    if not python.exists() or not stamp.exists() or stamp.read_text() != REQUIREMENTS.read_text():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
        stamp.write_text(REQUIREMENTS.read_text())
    return python


def run(python: pathlib.Path, conninfo: str, tasks: int, steps: int, trace: pathlib.Path | None = None) -> Any:
    """One drain in the peer's interpreter; its JSON result."""
    # -P: dev/ not on the path (its token.py would shadow the standard library's)
    command = [str(python), "-P", str(HERE / "bench_peer.py"), conninfo, str(tasks), str(steps)]
    command += ["--trace", str(trace)] if trace else []
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the peer failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def count_trace(trace: pathlib.Path) -> tuple[int, int]:
    """(round trips, statements) in a libpq trace: a run of client messages answered by the
    server is one round trip; each Bind (extended protocol) or Query (simple) is one statement, as
    BEGIN, COMMIT and the pool's empty check query are on the Planter side."""
    trips = statements = 0
    sending = False
    for line in trace.read_text().splitlines():
        parts = line.split("\t")
        if parts and parts[0] not in ("F", "B"):
            parts = parts[1:]  # a timestamp first
        if len(parts) < 3:
            continue
        direction, message = parts[0], parts[2]
        if direction == "F":
            statements += message in ("Bind", "Query")
            sending = True
        elif direction == "B" and sending:
            trips += 1
            sending = False
    return trips, statements


def _drain(conninfo: str, tasks: int, steps: int, trace: str | None) -> dict[str, Any]:
    import asyncio
    from importlib.metadata import version

    import procrastinate
    import psycopg

    async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
        if trace:
            conn.pgconn.trace(os.open(trace, os.O_WRONLY | os.O_APPEND | os.O_CREAT))
        backends.append(conn.pgconn.backend_pid)

    backends: list[int] = []
    connector = procrastinate.PsycopgConnector(conninfo=conninfo, configure=configure, min_size=1, max_size=2)
    app = procrastinate.App(connector=connector)
    started_at: list[float] = []

    @app.task(name="step")  # type: ignore[untyped-decorator]
    async def step(task: int, position: int) -> None:
        started_at.append(time.perf_counter())
        if position + 1 < steps:  # hand over to the next step, as Planter's record does
            await step.defer_async(task=task, position=position + 1)

    async def main() -> dict[str, Any]:
        async with app.open_async():
            found = await connector.execute_query_one_async("SELECT to_regclass('procrastinate_jobs') AS t")
            if found["t"] is None:
                await app.schema_manager.apply_schema_async()
            for task in range(tasks):
                await step.defer_async(task=task, position=0)
            cpu, pg_cpu, began = time.process_time(), backend_cpu_seconds(backends), time.perf_counter()
            await app.run_worker_async(concurrency=1, wait=False, listen_notify=False)
            elapsed = time.perf_counter() - began
            return {
                "steps": len(started_at),
                "seconds": elapsed,
                "step_ms": [1000 * (b - a) for a, b in itertools.pairwise(started_at)],
                "python_cpu_s": time.process_time() - cpu,
                # (a backend the pool opened during the drain counts whole: its CPU is all in the drain)
                "pg_cpu_s": backend_cpu_seconds(backends) - pg_cpu,
                "version": version("procrastinate"),
            }

    return asyncio.run(main())


if __name__ == "__main__":
    args = sys.argv[1:]
    trace_file = args[args.index("--trace") + 1] if "--trace" in args else None
    print(json.dumps(_drain(args[0], int(args[1]), int(args[2]), trace_file)))
