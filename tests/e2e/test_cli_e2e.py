"""The `planter` console script (.venv/bin/planter, installed by make install) against the local
stack: create --watch to the end (0 completed, 1 failed), resuming its stream when the server ends
it (streams of 2 s here), set-tier through the admin route, and the account routes."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
import requests
import sqlalchemy as sa

from dev.stack import LocalStack, free_port
from tests.conftest import TEST_JWT_SECRET, TEST_STEP_SECRET
from tests.e2e.conftest import E2E_ENV, Api, running_stack

PLANTER = pathlib.Path(sys.executable).parent / "planter"
LONG_STEP = 30  # seconds: a task still active while the test looks at it
CLI_ENV = {**E2E_ENV, "EVENTS_POLL_SECONDS": "0.1", "EVENTS_HEARTBEAT_SECONDS": "1", "EVENTS_STREAM_SECONDS": "2"}


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with running_stack(CLI_ENV, "pc") as local:
        yield local


def planter(
    stack: LocalStack, *args: str, email: str = "cli@example.test", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PLANTER_URL": stack.base_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "STEP_SIGNING_SECRET": TEST_STEP_SECRET,
    }
    token = subprocess.run(
        [str(PLANTER), "token", email], env=env, capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    env["PLANTER_TOKEN"] = token
    return subprocess.run([str(PLANTER), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_the_console_script_is_installed_in_the_virtualenv() -> None:
    assert PLANTER.exists(), "make install installs the project (pip install -e .) for .venv/bin/planter"


def test_create_watch_follows_a_task_to_completion_and_exits_0(stack: LocalStack, api: Api) -> None:
    # Steps of 0.5 s: the pipeline outlives several 2-second streams, so the CLI must resume.
    done = planter(stack, "create", "CLI Demo", "--watch", "--simulate", '{"step_seconds": 0.5}')
    assert done.returncode == 0, done.stdout + done.stderr
    assert "100%" in done.stdout and "completed" in done.stdout
    for step in ("creating_org", "forking_template", "customizing_project", "deploying", "creating_issues"):
        assert step in done.stdout
    task_id = done.stdout.split("created task ", 1)[1].split(";", 1)[0]
    stored = api.progress(task_id)
    # One line per progress event, each shown once although the stream was resumed.
    lines = [line for line in done.stdout.splitlines() if line.startswith("[") and "%" in line]
    assert len(lines) == len(stored), done.stdout


def test_create_watch_exits_1_for_a_failing_task_with_its_error(stack: LocalStack) -> None:
    failing = '{"step_seconds": 0.1, "fail_step": "deploying", "failures": 9}'
    done = planter(stack, "create", "CLI Fails", "--watch", "--simulate", failing, email="cli-fail@example.test")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "failed:" in done.stdout and "deploying" in done.stdout


class CuttingProxy:
    """A TCP proxy in front of the stack that resets each of its first ``cuts_left`` connections once
    it has passed ``cut_after`` bytes of the answer (mid-event, no clean end of stream), as a flaky
    network does; later connections pass whole."""

    def __init__(self, upstream_port: int, cut_after: int, cuts_left: int) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.cuts_left = cuts_left
        self.cuts = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _pipe(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        requests_in = threading.Thread(target=self._forward_requests, args=(client, upstream), daemon=True)
        requests_in.start()
        limit = self.cut_after if self.cuts < self.cuts_left else float("inf")
        passed, cut = 0, False
        try:
            while passed < limit:
                chunk = upstream.recv(int(min(4096, limit - passed)))
                if not chunk:
                    break
                client.sendall(chunk)
                passed += len(chunk)
            else:
                self.cuts += 1
                cut = True
        except OSError:
            pass
        finally:
            # Wake the other thread's recv (a close alone would not); a cut ends with a reset.
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RD)
            requests_in.join(5)
            if cut:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            upstream.close()

    @staticmethod
    def _forward_requests(client: socket.socket, upstream: socket.socket) -> None:
        try:
            while chunk := client.recv(4096):
                upstream.sendall(chunk)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()


def test_watch_survives_connections_dropped_mid_event(stack: LocalStack, api: Api) -> None:
    email = "cli-drops@example.test"
    task = api.create(email, "CLI Drops", step_seconds=0.3)
    proxy = CuttingProxy(stack.port, cut_after=900, cuts_left=3)  # the headers, an event or two, a reset
    try:
        proxy_url = f"http://127.0.0.1:{proxy.port}"
        done = planter(stack, "--url", proxy_url, "watch", task["task_id"], "--json", email=email)
    finally:
        proxy.close()
    assert done.returncode == 0, done.stdout + done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert proxy.cuts == 3 and len([e for e in events if e["event"] == "note" and "dropped" in e["data"]]) == 3
    ids = [int(e["id"]) for e in events if e["event"] == "progress"]
    assert ids == list(range(1, len(api.progress(task["task_id"])) + 1))  # none missed, none repeated
    assert events[-1]["event"] == "end" and events[-1]["data"]["status"] == "completed"


def test_watch_json_prints_events_as_json_lines(stack: LocalStack, api: Api) -> None:
    task = api.create("cli-json@example.test", "CLI Json", step_seconds=0.1)
    done = planter(stack, "watch", task["task_id"], "--json", email="cli-json@example.test")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    progress = [e for e in events if e["event"] == "progress"]
    assert [int(e["id"]) for e in progress] == list(range(1, len(progress) + 1))
    assert events[-1]["event"] == "end" and events[-1]["data"]["status"] == "completed"


def test_errors_are_the_problem_detail_with_exit_codes(stack: LocalStack) -> None:
    missing = planter(stack, "watch", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 3 and "404" in missing.stderr and "no task" in missing.stderr
    invalid = planter(stack, "create", "")
    assert invalid.returncode == 3 and "422" in invalid.stderr and "project_name" in invalid.stderr
    # Every command reports a refusal the same way (chat once crashed here on a missing --json).
    unknown = planter(stack, "chat", "hello", "--conversation", "00000000-0000-0000-0000-000000000000")
    assert unknown.returncode == 3 and "404" in unknown.stderr and "Traceback" not in unknown.stderr
    down = subprocess.run(
        [str(PLANTER), "--url", f"http://127.0.0.1:{free_port()}", "ls"], capture_output=True, text=True, check=False
    )
    assert down.returncode == 4 and "cannot reach" in down.stderr


def test_set_tier_lifts_the_limit_at_once(stack: LocalStack, api: Api) -> None:
    email = "cli-tier@example.test"
    api.create(email, "Before")  # the user exists; now put them at the free limit
    with api.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO usage (user_id, period_start, ai_operations_count)"
                " SELECT id, date_trunc('month', now() AT TIME ZONE 'UTC')::date, 100 FROM users WHERE email = :e"
                " ON CONFLICT (user_id, period_start) DO UPDATE SET ai_operations_count = 100"
            ),
            {"e": email},
        )
    body = {"project_name": "Past The Limit"}
    refused = requests.post(f"{stack.base_url}/api/v1/projects", json=body, headers=api.headers(email), timeout=10)
    assert refused.status_code == 429
    tier = planter(stack, "admin", "set-tier", email, "pro")
    assert tier.returncode == 0 and "pro" in tier.stdout, tier.stderr
    accepted = requests.post(f"{stack.base_url}/api/v1/projects", json=body, headers=api.headers(email), timeout=10)
    assert accepted.status_code == 202, accepted.text
    me = planter(stack, "me", "--json", email=email)
    profile = json.loads(me.stdout)
    assert profile["subscription"]["tier"] == "pro" and profile["subscription"]["monthly_operations_limit"] == 1000
    assert profile["usage"]["ai_operations"] >= 100
    listed = planter(stack, "admin", "users", "--email", "cli-tier", "--json")
    assert [u["tier"] for u in json.loads(listed.stdout)["users"]] == ["pro"]


def test_admin_routes_refuse_unsigned_requests(stack: LocalStack) -> None:
    post = requests.post(
        f"{stack.base_url}/internal/admin/subscriptions", json={"email": "x@example.test", "tier": "pro"}, timeout=10
    )
    assert post.status_code == 401
    listing = requests.get(f"{stack.base_url}/internal/admin/users", timeout=10)
    assert listing.status_code == 401


def test_the_other_commands_of_api_md_work_and_each_takes_json(stack: LocalStack, api: Api) -> None:
    """ls, cancel, jobs and chat against the local stack (the assistant answers from the Gemini
    stand-in), each with --json for scripts."""
    email = "cli-others@example.test"
    task = api.create(email, "CLI Others", step_seconds=LONG_STEP)
    listed = planter(stack, "ls", "--json", email=email)
    assert listed.returncode == 0, listed.stderr
    assert [t["task_id"] for t in json.loads(listed.stdout)["tasks"]] == [task["task_id"]]
    cancelled = planter(stack, "cancel", task["task_id"], "--json", email=email)
    assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["status"] == "cancelled", cancelled.stderr

    payload = json.dumps({"project_name": "Nightly", "simulate": {"step_seconds": 0.1}})
    created = planter(
        stack, "jobs", "create", "nightly", "--schedule", "0 3 * * *", "--type", "create_project",
        "--payload", payload, "--json", email=email,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    job_id = json.loads(created.stdout)["job_id"]
    paused = planter(stack, "jobs", "pause", job_id, "--json", email=email)
    assert paused.returncode == 0 and json.loads(paused.stdout)["status"] == "paused", paused.stderr
    resumed = planter(stack, "jobs", "resume", job_id, "--json", email=email)
    assert resumed.returncode == 0 and json.loads(resumed.stdout)["status"] == "active", resumed.stderr
    jobs = planter(stack, "jobs", "ls", "--json", email=email)
    assert [j["job_id"] for j in json.loads(jobs.stdout)["jobs"]] == [job_id], jobs.stderr
    runs = planter(stack, "jobs", "runs", job_id, "--json", email=email)
    assert runs.returncode == 0 and json.loads(runs.stdout)["runs"] == [], runs.stderr
    assert planter(stack, "jobs", "rm", job_id, email=email).returncode == 0
    assert json.loads(planter(stack, "jobs", "ls", "--json", email=email).stdout)["jobs"] == []

    said = planter(stack, "chat", "How many projects do I have?", email=email)
    assert said.returncode == 0 and said.stdout.startswith("planter> "), said.stdout + said.stderr
    answer = planter(stack, "chat", "--json", "And how many failed?", email=email)
    assert answer.returncode == 0, answer.stderr
    assert [m["role"] for m in json.loads(answer.stdout)["messages"]] == ["user", "assistant"]
