"""Live updates measured (docs/DESIGN.md "Live updates"): how many event-stream watchers one
functions instance holds, and the latency from a progress write to the event arriving.

    .venv/bin/python -m dev.bench_events [--watchers 80] [--tasks 20] [--seconds 40] [--writes-per-second 5]

Starts the local stack with THREADS = watchers (one gunicorn thread per open stream, as the
`events` function is deployed), opens that many streams on quiet tasks, posts progress callbacks
(the real write path) at a steady rate and records when each one's event reaches every watcher of
its task. Latency is measured from just before the callback is sent, so it includes the write.
Then the same wake-up through LISTEN/NOTIFY with pg8000, both ways pg8000 allows it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import pathlib
import random
import select
import shutil
import tempfile
import threading
import time
from typing import Any

import sqlalchemy as sa

from common.auth import issue_callback_token
from common.config import load_settings
from dev.bench_util import percentile, tree_cpu_seconds
from dev.stack import LocalStack, free_port
from dev.token import user_token


class Watcher(threading.Thread):
    """One client following one task's stream, reconnecting with Last-Event-ID like EventSource."""

    def __init__(self, port: int, task_id: str, token: str, arrivals: dict[str, list[float]], stop: threading.Event):
        super().__init__(daemon=True)
        self.port, self.task_id, self.token, self.arrivals, self.stop = port, task_id, token, arrivals, stop
        self.connected = threading.Event()
        self.reconnects = 0
        self.errors = 0

    def run(self) -> None:
        last_id: str | None = None
        while not self.stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
                if last_id:
                    headers["Last-Event-ID"] = last_id
                conn.request("GET", f"/api/v1/tasks/{self.task_id}/events", headers=headers)
                response = conn.getresponse()
                if response.status != 200:
                    self.errors += 1
                    time.sleep(1)
                    continue
                self.connected.set()
                event_id = None
                while not self.stop.is_set():
                    line = response.readline()
                    if not line:
                        break
                    if line.startswith(b"id: "):
                        event_id = line[4:].strip().decode()
                    elif line.startswith(b"data: "):
                        now = time.monotonic()
                        message = json.loads(line[6:]).get("message", "")
                        if message.startswith("bench-"):
                            self.arrivals.setdefault(message, []).append(now)
                        last_id = event_id
                self.reconnects += 1
            except OSError:
                self.errors += 1
            finally:
                conn.close()


def watchers_run(args: argparse.Namespace) -> dict[str, Any]:
    root = pathlib.Path(tempfile.mkdtemp(prefix="pv", dir="/tmp"))
    # The simulated provider, allowed steps as long as the run: every watched task's first step
    # waits (handed off) past the end, so the tasks stay active and quiet but for the bench's writes.
    env = {"THREADS": str(args.watchers + 8), "EVENTS_POLL_SECONDS": str(args.poll)}
    env |= {"STEP_PROVIDER": "simulated", "SIMULATE_MAX_STEP_SECONDS": "600"}
    stack = LocalStack(data_dir=root / "pg", port=free_port(), tick_seconds=3600, env_overrides=env, quiet=True)
    stop = threading.Event()
    try:
        stack.start()
        # The stack serves with this process's secrets (or the development ones): the same settings.
        settings = load_settings()
        tasks, tokens = [], {}
        for i in range(args.tasks):
            token = user_token(f"bench-events-{i}@planter.dev")  # one user per task: no quota in the way
            body = json.dumps({"project_name": f"Watch {i}", "simulate": {"step_seconds": 600}}).encode()
            conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
            conn.request(
                "POST",
                "/api/v1/projects",
                body,
                {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            created = json.loads(conn.getresponse().read())
            if "task_id" not in created:
                raise RuntimeError(f"could not create a task to watch: {created}")
            tasks.append(created["task_id"])
            tokens[created["task_id"]] = token
            conn.close()
        arrivals: dict[str, list[float]] = {}
        watchers = [
            Watcher(stack.port, tasks[i % len(tasks)], tokens[tasks[i % len(tasks)]], arrivals, stop)
            for i in range(args.watchers)
        ]
        for w in watchers:
            w.start()
        for w in watchers:
            w.connected.wait(30)
        held = sum(w.connected.is_set() for w in watchers)
        time.sleep(1)
        assert stack.functions is not None
        functions_pid = stack.functions.pid
        cpu_before, wall_before = tree_cpu_seconds(functions_pid), time.monotonic()
        sent: dict[str, tuple[float, str]] = {}
        n = 0
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            task_id = tasks[n % len(tasks)]
            message = f"bench-{n}"
            callback = issue_callback_token(task_id, settings, time.time())
            body = json.dumps({"update_id": message, "message": message}).encode()
            conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
            started = time.monotonic()
            conn.request(
                "POST",
                f"/api/v1/tasks/{task_id}/progress",
                body,
                {"Authorization": f"Bearer {callback}", "Content-Type": "application/json"},
            )
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                sent[message] = (started, task_id)
            n += 1
            time.sleep(max(0.0, started + 1 / args.writes_per_second - time.monotonic()))
        time.sleep(args.poll * 4 + 1)
        cpu = tree_cpu_seconds(functions_pid) - cpu_before
        wall = time.monotonic() - wall_before
        per_task = {t: sum(1 for i in range(args.watchers) if tasks[i % len(tasks)] == t) for t in tasks}
        latencies, missing = [], 0
        for message, (started, task_id) in sent.items():
            got = arrivals.get(message, [])
            missing += per_task[task_id] - len(got)
            latencies += [(a - started) * 1000 for a in got]
        stop.set()
        return {
            "watchers": args.watchers,
            "held": held,
            "writes": len(sent),
            "deliveries": len(latencies),
            "missing_or_repeated": missing,
            "reconnects": sum(w.reconnects for w in watchers),
            "latency_ms_p50": round(percentile(latencies, 50), 1),
            "latency_ms_p99": round(percentile(latencies, 99), 1),
            "latency_ms_max": round(max(latencies, default=float("nan")), 1),
            "functions_cpu_percent": round(100 * cpu / wall, 1),
            "poll_seconds": args.poll,
        }
    finally:
        stop.set()
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


def notify_run(samples: int, poll: float) -> dict[str, Any]:
    """NOTIFY -> a pg8000 listener. pg8000 reads notifications only while it reads the socket for
    a query, so a listener must either query every ``poll`` s, or wait on its (private) socket."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="pn", dir="/tmp"))
    from dev import pg

    server = pg.start(root / "pg")
    try:
        engine = sa.create_engine(pg.url(server), poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
        results = {}
        for mode in ("query every poll", "select() on the socket"):
            raw = engine.raw_connection()  # kept referenced: the pool closes it when collected
            listener: Any = raw.driver_connection
            listener.autocommit = True
            listener.run("LISTEN planter_progress")
            latencies = []
            grid = time.monotonic()
            with engine.connect() as writer:
                for i in range(samples):
                    time.sleep(random.uniform(0.01, poll))  # writes at times unrelated to the poll
                    sent = time.monotonic()
                    writer.execute(sa.text("SELECT pg_notify('planter_progress', :p)"), {"p": f"task-{i}"})
                    while True:
                        if mode == "query every poll":  # on the listener's own grid, not the writer's
                            time.sleep(poll - (time.monotonic() - grid) % poll)
                        else:
                            select.select([listener._usock], [], [], 5)
                        listener.run("SELECT 1")
                        if listener.notifications:
                            listener.notifications.clear()
                            latencies.append((time.monotonic() - sent) * 1000)
                            break
            raw.close()
            results[mode] = {
                "p50_ms": round(percentile(latencies, 50), 2),
                "p99_ms": round(percentile(latencies, 99), 2),
            }
        engine.dispose()
        return results
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--watchers", type=int, default=80)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--writes-per-second", type=float, default=5)
    parser.add_argument("--poll", type=float, default=0.25)
    parser.add_argument("--notify-samples", type=int, default=40)
    parser.add_argument("--skip-notify", action="store_true")
    parser.add_argument("--skip-watchers", action="store_true")
    args = parser.parse_args()
    if not args.skip_watchers:
        print(json.dumps({"history polling through the real server": watchers_run(args)}, indent=2), flush=True)
    if not args.skip_notify:
        print(json.dumps({"LISTEN/NOTIFY with pg8000": notify_run(args.notify_samples, args.poll)}, indent=2))


if __name__ == "__main__":
    main()
