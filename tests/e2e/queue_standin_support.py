"""The worker and the process the queue stand-in tests drive (tests/e2e/test_queue_standin.py)."""

from __future__ import annotations

import itertools
import pathlib
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from common.config import Settings
from common.queue import tasks_client
from dev.stack import ROOT, free_port, wait_for_port
from dev.standins.serving import ServedOnThread

PARENT = "projects/standin-test/locations/us-central1"


@dataclass
class Arrival:
    task: str
    at: float  # time.time() when the request arrived
    headers: dict[str, str]
    body: bytes


@dataclass
class Target:
    """The worker: answers each request as its X-Test-Behaviour header says, and records it."""

    arrivals: list[Arrival] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)  # by queue
    most_in_flight: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def answer(self, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        behaviour = headers.get("X-Test-Behaviour", "ok")
        retry = int(headers["X-CloudTasks-TaskRetryCount"])
        if behaviour == "fail":
            return 500, {}
        if behaviour.startswith("hold:"):  # hold:SECONDS, then 200
            time.sleep(float(behaviour.split(":")[1]))
        if behaviour.startswith("throttle:"):  # throttle:STATUS:RETRY_AFTER on the first attempt, then 200
            _, status, after = behaviour.split(":")
            if retry == 0:
                return int(status), {"Retry-After": after}
        return 200, {}

    def arrivals_of(self, task: str) -> list[Arrival]:
        with self.lock:
            return [a for a in self.arrivals if a.task == task]


class Standin:
    """The stand-in process, its journal and its log."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.port = free_port()
        self.state = directory / "cloudtasks.jsonl"
        self.log_path = directory / "cloudtasks.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()
        self.client = tasks_client(Settings(tasks_endpoint=f"http://127.0.0.1:{self.port}"))

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dev.cloudtasks", "--port", str(self.port), "--state", str(self.state)],
                cwd=ROOT,
                stdout=log,
                stderr=log,
            )
        wait_for_port(self.port, 30)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text()


def serve_target() -> tuple[Target, ServedOnThread]:
    """Start the worker on a free port; returns it and its server (to stop)."""
    recorder = Target()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            headers = dict(self.headers.items())
            body = self.rfile.read(int(headers.get("Content-Length") or 0))
            queue = headers["X-CloudTasks-QueueName"]
            with recorder.lock:
                recorder.arrivals.append(Arrival(headers["X-CloudTasks-TaskName"], time.time(), headers, body))
                recorder.in_flight[queue] = recorder.in_flight.get(queue, 0) + 1
                recorder.most_in_flight[queue] = max(recorder.most_in_flight.get(queue, 0), recorder.in_flight[queue])
            try:
                if headers.get("X-Test-Behaviour", "").startswith("trickle:"):
                    self.trickle(int(headers["X-Test-Behaviour"].split(":")[1]))
                    return
                status, extra = recorder.answer(headers)
            finally:
                with recorder.lock:
                    recorder.in_flight[queue] -= 1
            try:
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the stand-in gave up waiting (its dispatch deadline)

        def trickle(self, seconds: int) -> None:
            """A 200 whose body comes one byte a second: never silent long enough for a socket timeout."""
            try:
                self.send_response(200)
                self.send_header("Content-Length", str(seconds))
                self.end_headers()
                for _ in range(seconds):
                    self.wfile.write(b".")
                    self.wfile.flush()
                    time.sleep(1)
            except OSError:
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    worker = ServedOnThread(ThreadingHTTPServer(("127.0.0.1", 0), Handler), "queue-test-worker").start()
    recorder.url = f"{worker.base_url}/work"
    return recorder, worker


def make_queue(standin: Standin, queue_id: str, *, concurrent: int = 10, rate: float = 100, **retry: Any) -> str:
    retry_config = {"max_attempts": 3, "min_backoff": {"seconds": 1}, "max_backoff": {"seconds": 10}} | retry
    queue = standin.client.create_queue(
        parent=PARENT,
        queue={
            "name": f"{PARENT}/queues/{queue_id}",
            "rate_limits": {"max_concurrent_dispatches": concurrent, "max_dispatches_per_second": rate},
            "retry_config": retry_config,
        },
    )
    return str(queue.name)


def add_task(standin: Standin, target: Target, queue: str, task_id: str, behaviour: str = "ok", **fields: Any) -> Any:
    task = {
        "name": f"{queue}/tasks/{task_id}",
        "http_request": {
            "http_method": "POST",
            "url": target.url,
            "headers": {"Content-Type": "application/json", "X-Test-Behaviour": behaviour},
            "body": b'{"task": "' + task_id.encode() + b'"}',
        },
        **fields,
    }
    return standin.client.create_task(parent=queue, task=task)


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def gaps(arrivals: list[Arrival]) -> list[float]:
    return [later.at - earlier.at for earlier, later in itertools.pairwise(arrivals)]
