"""`make dev` as a newcomer uses it: the stack answers, keeps its data across restarts, and a
SIGTERM stops every process it started (PostgreSQL included), leaving nothing behind."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from dev.stack import ROOT, free_port
from tests.conftest import TEST_JWT_SECRET, TEST_STEP_SECRET, make_token

READY_LINE = "Ctrl-C stops everything."


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class DevCommand:
    """`python -m dev.stack` (the recipe of `make dev`) in its own process group."""

    def __init__(self, data_dir: pathlib.Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    def start(self, timeout: float = 60) -> None:
        env = {
            **os.environ,
            "PORT": str(self.port),
            "PLANTER_DATA_DIR": str(self.data_dir),
            "JWT_SECRET": TEST_JWT_SECRET,
            "STEP_SIGNING_SECRET": TEST_STEP_SECRET,
        }
        self.output = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dev.stack"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        for line in self.process.stdout:
            self.output.append(line)
            if READY_LINE in line:
                return
            assert time.monotonic() < deadline, "".join(self.output)
        raise AssertionError(f"make dev exited before it was ready:\n{''.join(self.output)}")

    @property
    def queue_port(self) -> int:
        found = re.search(r"Cloud Tasks stand-in on 127\.0\.0\.1:(\d+)", "".join(self.output))
        assert found, "".join(self.output)
        return int(found.group(1))

    def terminate_group(self) -> str:
        """SIGTERM to the whole process group, twice, as `kill -- -PGID` plus make's forwarding does."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        time.sleep(0.05)
        os.killpg(self.process.pid, signal.SIGTERM)
        rest, _ = self.process.communicate(timeout=30)
        return rest

    def functions_pid(self) -> int:
        """The functions-framework process serving this stack's port (found in /proc)."""
        for cmdline in pathlib.Path("/proc").glob("[0-9]*/cmdline"):
            try:
                args = cmdline.read_bytes().split(b"\0")
            except OSError:
                continue
            if any(a.endswith(b"functions-framework") for a in args) and str(self.port).encode() in args:
                return int(cmdline.parent.name)
        raise AssertionError("no functions process found")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _run_task(base: str, headers: dict[str, str], task_type: str, payload: dict[str, object]) -> dict[str, Any]:
    """POST /api/v1/tasks and wait until the task has finished."""
    made = requests.post(
        f"{base}/api/v1/tasks", json={"type": task_type, "payload": payload}, headers=headers, timeout=10
    )
    assert made.status_code == 202, made.text
    url, deadline = f"{base}/api/v1/tasks/{made.json()['task_id']}", time.monotonic() + 60
    while (task := requests.get(url, headers=headers, timeout=10).json())["status"] not in ("completed", "failed"):
        assert time.monotonic() < deadline, task
        time.sleep(0.5)
    assert task["status"] == "completed", task
    found: dict[str, Any] = task
    return found


@pytest.fixture
def dev_command() -> Iterator[DevCommand]:
    root = pathlib.Path(tempfile.mkdtemp(prefix="pd", dir="/tmp"))  # short: the unix socket path
    command = DevCommand(root / "pg", free_port())
    try:
        yield command
    finally:
        command.kill()
        shutil.rmtree(root, ignore_errors=True)


def test_make_dev_serves_keeps_data_and_stops_clean(dev_command: DevCommand) -> None:
    dev_command.start()
    base = f"http://127.0.0.1:{dev_command.port}"
    health = requests.get(f"{base}/healthz", timeout=5).json()
    assert (health["status"], health["database"]) == ("ok", "ok")
    assert set(health["standins"]) == {"github", "gemini", "gcp"}  # the live provider's outside services, local
    gemini = re.search(r"Gemini stand-in on (\S+)$", "".join(dev_command.output), re.MULTILINE)
    assert gemini and health["standins"]["gemini"] == gemini[1], "the Gemini stand-in make dev printed"
    token = re.search(r"^(eyJ[\w.-]+)$", "".join(dev_command.output), re.MULTILINE)
    assert token, "make dev printed no bearer token"
    # The dashboard's sign-in link carries that token in the fragment (never sent to the server).
    link = re.search(r"sign-in link: (\S+)/#token=(eyJ[\w.-]+)$", "".join(dev_command.output), re.MULTILINE)
    assert link and link.groups() == (base, token.group(1)), "make dev printed no dashboard sign-in link"
    assert requests.get(f"{base}/", timeout=5).headers["Content-Type"].startswith("text/html")
    printed = {"Authorization": f"Bearer {token.group(1)}"}
    created = requests.post(
        f"{base}/api/v1/projects", json={"project_name": "Kept Across Restarts"}, headers=printed, timeout=10
    )
    assert created.status_code == 202, created.text
    queue_port = dev_command.queue_port

    # No `simulate`: the live provider plants a real (local) repository that git clone fetches.
    task_url = f"{base}/api/v1/tasks/{created.json()['task_id']}"
    deadline = time.monotonic() + 90
    while (task := requests.get(task_url, headers=printed, timeout=10).json())["status"] not in ("completed", "failed"):
        assert time.monotonic() < deadline, task
        time.sleep(0.5)
    assert task["status"] == "completed", task
    # Deployed through the Google Cloud stand-in: its build posted its own progress to this stack.
    deployed = {s["name"]: s for s in task["steps"]}["deploying"]
    assert deployed["status"] == "succeeded" and task["deployment_url"] == deployed["result"]["service_url"]
    print("planted:", json.dumps({k: task[k] for k in ("gcp_project_id", "deployment_url", "repo_url")}))
    clone = dev_command.data_dir.parent / "clone"
    subprocess.run(["git", "clone", "--quiet", task["repo_url"], str(clone)], check=True, timeout=60)
    log = subprocess.run(["git", "log", "--format=%s"], cwd=clone, capture_output=True, text=True, check=True)
    assert log.stdout.splitlines() == ["Customize the template for kept-across-restarts", "Initial commit"]

    # The other task types on the planted project, through the live provider: more issues, then teardown.
    project = {"project_task_id": task["task_id"]}
    more = _run_task(base, printed, "generate_issues", {**project, "count": 2})
    assert more["result"]["issues_opened"] == 2, more
    gone = _run_task(base, printed, "teardown", project)
    assert gone["result"]["repository"] == "archived", gone
    # make dev configures the Google Cloud stand-in: the project the planting made is deleted.
    assert gone["steps"][0]["status"] == "succeeded" and gone["result"]["gcp_project"] == "deleted", gone
    assert gone["result"]["gcp_project_id"] == task["gcp_project_id"]

    # The planter command against make dev, with the token it printed: created, watched to the end.
    cli_env = {**os.environ, "PLANTER_URL": base, "PLANTER_TOKEN": token.group(1)}
    cli = [str(pathlib.Path(sys.executable).parent / "planter"), "create", "CLI Demo", "--watch"]
    watched = subprocess.run(cli, env=cli_env, capture_output=True, text=True, timeout=180, check=False)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert "100%" in watched.stdout and "completed" in watched.stdout, watched.stdout

    # A crash of the functions (kill -9) is followed by a new process, as Cloud Functions would start.
    crashed = dev_command.functions_pid()
    os.killpg(crashed, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not _answers(f"{base}/healthz") or dev_command.functions_pid() == crashed:
        assert time.monotonic() < deadline, "the functions were not started again after a crash"
        time.sleep(0.2)

    rest = dev_command.terminate_group()
    assert dev_command.process is not None and dev_command.process.returncode == 0, rest
    assert "starting a new one" in rest and "stopped" in rest
    assert not _listening(dev_command.port), "the functions outlived make dev"
    assert not _listening(queue_port), "the queue stand-in outlived make dev"
    # The stand-in's output is the stack's: one line per dispatch of the pipeline just created.
    assert re.search(r"\[cloudtasks [\d:.]+\] dispatch \S+-creating-org-0 queue=planter-steps attempt=1", rest), rest
    assert not (dev_command.data_dir / "postmaster.pid").exists(), "PostgreSQL outlived make dev"

    dev_command.start()  # a second start on the kept database (its speed is make dev's own print-out)
    demo = {"Authorization": f"Bearer {make_token('demo@planter.dev', exp=int(time.time()) + 600)}"}
    task_id = created.json()["task_id"]
    kept = requests.get(f"{base}/api/v1/tasks/{task_id}", headers=demo, timeout=10)
    assert kept.status_code == 200, kept.text
    assert kept.json()["project_name"] == "Kept Across Restarts"
    # Start-up says what the kept database still has running, and how to start afresh.
    said = "".join(dev_command.output)
    assert re.search(r"has \d+ unfinished task", said) and "rm -rf" in said, said
    dev_command.terminate_group()
