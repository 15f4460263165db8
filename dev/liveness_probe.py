"""`python -m dev.liveness_probe`: do failing steps slow everyone else's pipelines on the local queue?

Starts a LocalStack, then at once FAILING pipelines whose second step fails 3 times (1 + 2 + 4 s
of backoff) and CLEAN ones, and prints how long the clean pipelines took (created → completed),
with the step deliveries the functions answered (counted from their log when it says). Run it on
two trees to compare how a failing step is answered (non-2xx and redelivered by the queue, or
2xx with Planter scheduling the retry). The figures are in docs/DESIGN.md ("Liveness").
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import statistics
import tempfile
import time
from typing import Any

import jwt
import requests

from dev.stack import LocalStack, free_port

JWT_SECRET = "liveness-probe-jwt-secret-0123456789-0123456789"
STEP_SECRET = "liveness-probe-step-secret-0123456789-012345678"
TERMINAL = ("completed", "failed", "cancelled")


def token(email: str) -> str:
    now = int(time.time())
    return jwt.encode({"email": email, "sub": f"probe|{email}", "iat": now, "exp": now + 3600}, JWT_SECRET)


def deliveries(log_path: pathlib.Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in log_path.read_bytes().splitlines():
        try:
            entry: Any = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("message") == "step outcome":
            counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--failing", type=int, default=6)
    parser.add_argument("--clean", type=int, default=10)
    args = parser.parse_args()
    root = pathlib.Path(tempfile.mkdtemp(prefix="pl", dir="/tmp"))
    stack = LocalStack(
        data_dir=root / "pg",
        port=free_port(),
        tick_seconds=1,
        quiet=True,
        log_path=root / "functions.log",
        env_overrides={
            "JWT_SECRET": JWT_SECRET,
            "STEP_SIGNING_SECRET": STEP_SECRET,
            "STEP_TIMEOUT_SECONDS": "3",
            "REDELIVERY_GRACE_SECONDS": "10",
        },
    )
    try:
        stack.start()
        session = requests.Session()
        headers = {"Authorization": f"Bearer {token('probe@planter.test')}"}
        created: dict[str, tuple[str, float]] = {}
        bodies = [("failing", {"fail_step": "forking_template", "failures": 3})] * args.failing
        bodies += [("clean", {"step_seconds": 0.05})] * args.clean
        for i, (kind, simulate) in enumerate(bodies):
            body = {"project_name": f"Probe {i}", "simulate": simulate}
            response = session.post(f"{stack.base_url}/api/v1/projects", json=body, headers=headers, timeout=30)
            response.raise_for_status()
            created[response.json()["task_id"]] = (kind, time.monotonic())
        took: dict[str, list[float]] = {"failing": [], "clean": []}
        pending = dict(created)
        deadline = time.monotonic() + 180
        while pending and time.monotonic() < deadline:
            for task_id, (kind, started) in list(pending.items()):
                task = session.get(f"{stack.base_url}/api/v1/tasks/{task_id}", headers=headers, timeout=10).json()
                if task["status"] in TERMINAL:
                    took[kind].append(time.monotonic() - started)
                    del pending[task_id]
            time.sleep(0.1)
        for kind, seconds in took.items():
            if seconds:
                print(
                    f"{kind:8} pipelines: {len(seconds)} ended; created → ended p50 {statistics.median(seconds):.1f} s,"
                    f" max {max(seconds):.1f} s"
                )
        print(f"not ended after 180 s: {len(pending)}")
        assert stack.log_path is not None
        print(f"step deliveries by outcome (from the log, where it says): {deliveries(stack.log_path)}")
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
