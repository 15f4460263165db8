"""Measure what priority buys: a backlog of low-priority work, then one task, high or low.

Starts its own local stack (free ports), queues ``--backlog`` low-priority create_project tasks,
then a probe task of the same work at high priority, and the same again with the probe at low
priority as the control. Prints, for each: how long the probe took from request to completion and
how many backlog tasks finished before it. Each priority has its own queue (common/config.py), so
the high probe does not wait behind the low backlog.

    .venv/bin/python -m dev.priority_run [--backlog 12] [--step-seconds 0.3]
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import shutil
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from typing import Any

import jwt
import requests

from dev.stack import LocalStack, free_port

JWT_SECRET = "priority-run-jwt-secret-0123456789-0123456789"
STEP_SECRET = "priority-run-step-secret-0123456789-0123456789"
TERMINAL = ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class Figures:
    probe_priority: str
    probe_seconds: float
    backlog_done_before_probe: int
    backlog: int
    backlog_seconds: float

    def line(self) -> str:
        return (
            f"probe {self.probe_priority:>4}: finished in {self.probe_seconds:6.1f} s, after"
            f" {self.backlog_done_before_probe:2d} of {self.backlog} low-priority backlog tasks"
            f" (the backlog took {self.backlog_seconds:.1f} s)"
        )


def token(email: str, secret: str) -> str:
    now = int(time.time())
    return jwt.encode({"email": email, "sub": email, "iat": now, "exp": now + 3600}, secret, algorithm="HS256")


def measure(base_url: str, secret: str, *, backlog: int, step_seconds: float, probe_priority: str) -> Figures:
    """One scenario, as its own user (so quota and listings do not mix between scenarios)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token(f'prio-{uuid.uuid4().hex[:8]}@example.test', secret)}"
    simulate = {"step_seconds": step_seconds}

    def submit(priority: str, name: str) -> str:
        body = {"type": "create_project", "payload": {"project_name": name, "simulate": simulate}, "priority": priority}
        response = session.post(f"{base_url}/api/v1/tasks", json=body, timeout=10)
        response.raise_for_status()
        task_id: str = response.json()["task_id"]
        return task_id

    started = time.monotonic()
    low = [submit("low", f"Backlog {i}") for i in range(backlog)]
    probe_submitted = time.monotonic()
    probe = submit(probe_priority, "Probe")
    finished: dict[str, float] = {}
    while len(finished) < backlog + 1:
        for task_id in [probe, *low]:
            if task_id in finished:
                continue
            task: dict[str, Any] = session.get(f"{base_url}/api/v1/tasks/{task_id}", timeout=10).json()
            if task["status"] in TERMINAL:
                assert task["status"] == "completed", task
                finished[task_id] = time.monotonic()
        time.sleep(0.2)
        if time.monotonic() - started > 600:
            raise TimeoutError("the scenario did not finish in 10 minutes")
    session.close()
    return Figures(
        probe_priority=probe_priority,
        probe_seconds=finished[probe] - probe_submitted,
        backlog_done_before_probe=sum(1 for t in low if finished[t] < finished[probe]),
        backlog=backlog,
        backlog_seconds=max(finished[t] for t in low) - started,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=12)
    parser.add_argument("--step-seconds", type=float, default=0.3)
    args = parser.parse_args()
    for noisy in ("pgserver", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    root = pathlib.Path(tempfile.mkdtemp(prefix="pp", dir="/tmp"))  # short: the unix socket path
    stack = LocalStack(
        data_dir=root / "pg",
        port=free_port(),
        tick_seconds=1,
        quiet=True,
        log_path=root / "functions.log",
        env_overrides={"JWT_SECRET": JWT_SECRET, "STEP_SIGNING_SECRET": STEP_SECRET, "STEP_PROVIDER": "simulated"},
    )
    try:
        stack.start()
        print(f"[priority-run] {args.backlog} low-priority tasks of 6 steps x {args.step_seconds} s, then a probe")
        for priority in ("high", "low"):
            figures = measure(
                stack.base_url,
                JWT_SECRET,
                backlog=args.backlog,
                step_seconds=args.step_seconds,
                probe_priority=priority,
            )
            print(f"[priority-run] {figures.line()}", flush=True)
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
