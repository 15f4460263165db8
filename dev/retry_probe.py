"""`python -m dev.retry_probe`: who should own a failing step's retries, the queue or Planter?

Measured on the local Cloud Tasks stand-in (dev/cloudtasks, started as `make dev` starts it, driven
by the real google-cloud-tasks client) with the normal-priority queue's local configuration: 4
dispatches at once, 10 a second, retries 1 s to 10 s apart. FAILING tasks fail their first 3
attempts, CLEAN ones succeed at once, every attempt working 0.3 s, all created together. A failing
attempt is answered three ways:
- `503`: the queue retries it with its backoff and, as Cloud Tasks documents ("System
  throttling"), slows the whole queue while its worker answers 503 (what the stand-in models);
- `500`: the queue retries it with its backoff (Cloud Tasks also slows a queue whose error rate is
  high; the stand-in does not model that, so this row is the best case of a non-2xx answer);
- `owned`: 200, after creating its retry as a new named task scheduled at the end of the same
  backoff (1, 2, 4 s), as Planter's steps do.
Printed: how long the clean tasks took from creation to their answer (p50 / p99 / max) and when
the failing ones were done. docs/DESIGN.md ("Liveness") keeps the figures.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

from common.config import Settings
from common.queue import tasks_client
from dev.local_queues import LOCAL_QUEUE_CONFIG, PRIORITY_RATE_LIMITS
from dev.stack import ROOT, free_port, wait_for_port
from dev.standins.serving import QuietThreadingServer, ServedOnThread

PARENT = "projects/retry-probe/locations/us-central1"
MODES = ("503", "500", "owned")
BACKOFF = (1.0, 2.0, 4.0)  # the step's own backoff before its 2nd, 3rd and 4th attempt


class Probe:
    """The worker the queue dispatches to, and the tasks it creates (the `owned` retries)."""

    def __init__(self, mode: str, client: Any, queue: str, failures: int, work: float) -> None:
        self.mode, self.client, self.queue, self.failures, self.work = mode, client, queue, failures, work
        self.attempts: dict[str, int] = {}
        self.done: dict[str, float] = {}
        self.lock = threading.Lock()
        self.url = ""

    def add(self, name: str, logical: str, delay: float = 0.0) -> None:
        task: dict[str, Any] = {
            "name": f"{self.queue}/tasks/{name}",
            "http_request": {"http_method": "POST", "url": self.url, "body": json.dumps({"task": logical}).encode()},
        }
        if delay:
            task["schedule_time"] = datetime.now(UTC) + timedelta(seconds=delay)
        self.client.create_task(parent=self.queue, task=task)

    def answer(self, logical: str) -> int:
        time.sleep(self.work)
        with self.lock:
            attempt = self.attempts[logical] = self.attempts.get(logical, 0) + 1
        if logical.startswith("fail") and attempt <= self.failures:
            if self.mode != "owned":
                return int(self.mode)
            self.add(f"{logical}-retry-{attempt}", logical, BACKOFF[min(attempt, len(BACKOFF)) - 1])
            return 200  # this attempt is answered; its retry is a task of its own
        with self.lock:
            self.done.setdefault(logical, time.monotonic())
        return 200


def serve(probe: Probe) -> ServedOnThread:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self.send_response(probe.answer(body["task"]))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    worker = ServedOnThread(QuietThreadingServer(("127.0.0.1", 0), Handler), "retry-probe-worker").start()
    probe.url = f"{worker.base_url}/step"
    return worker


def run(mode: str, failing: int, clean: int, failures: int, work: float, directory: pathlib.Path) -> dict[str, Any]:
    port = free_port()
    state = directory / f"{mode}.jsonl"
    with (directory / f"{mode}.log").open("ab") as log:
        standin = subprocess.Popen(
            [sys.executable, "-m", "dev.cloudtasks", "--port", str(port), "--state", str(state)],
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
    try:
        wait_for_port(port, 30)
        client = tasks_client(Settings(tasks_endpoint=f"http://127.0.0.1:{port}"))
        config = {**LOCAL_QUEUE_CONFIG, "rate_limits": PRIORITY_RATE_LIMITS["normal"]}
        queue = client.create_queue(parent=PARENT, queue={"name": f"{PARENT}/queues/probe", **config}).name
        probe = Probe(mode, client, queue, failures, work)
        server = serve(probe)
        created: dict[str, float] = {}
        for logical in [f"fail-{i}" for i in range(failing)] + [f"clean-{i}" for i in range(clean)]:
            created[logical] = time.monotonic()
            probe.add(logical, logical)
        deadline = time.monotonic() + 300
        while len(probe.done) < failing + clean and time.monotonic() < deadline:
            time.sleep(0.1)
        server.stop()
    finally:
        standin.kill()
        standin.wait()
    took = {name: probe.done[name] - created[name] for name in created if name in probe.done}
    cleans = sorted(v for k, v in took.items() if k.startswith("clean"))
    fails = sorted(v for k, v in took.items() if k.startswith("fail"))
    return {
        "mode": mode,
        "clean_p50_s": round(statistics.median(cleans), 2),
        "clean_p99_s": round(cleans[max(0, int(len(cleans) * 0.99) - 1)], 2),
        "clean_max_s": round(cleans[-1], 2),
        "failing_p50_s": round(statistics.median(fails), 2),
        "failing_max_s": round(fails[-1], 2),
        "dispatches": sum(probe.attempts.values()),
        "unfinished": failing + clean - len(took),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failing", type=int, default=8)
    parser.add_argument("--clean", type=int, default=40)
    parser.add_argument("--failures", type=int, default=3)
    parser.add_argument("--work", type=float, default=0.3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="retry-probe-") as directory:
        for mode in MODES:
            print(json.dumps(run(mode, args.failing, args.clean, args.failures, args.work, pathlib.Path(directory))))


if __name__ == "__main__":
    main()
