"""`make dev`: the whole local stack in the foreground.

Embedded PostgreSQL (pgserver, data under .local/), Alembic migrations, the local Cloud Tasks
stand-in (dev/cloudtasks, its journal next to the database) with the queue created, every
function behind one base URL (functions-framework serving the local gateway with the
production server settings), and a Cloud Scheduler stand-in ticking the reaper. Ctrl-C or
SIGTERM stops everything it started, PostgreSQL included.

The LocalStack class is also what the end-to-end tests and the fault run drive.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from common.auth import SIGNATURE_HEADER, sign_body
from common.config import DEV_JWT_SECRET, DEV_STEP_SECRET
from dev import pg

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV_BIN = pathlib.Path(sys.executable).parent
TICK_BODY = b"{}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


@dataclass
class LocalStack:
    """PostgreSQL + the Cloud Tasks stand-in + functions + ticker, as processes on this machine."""

    data_dir: pathlib.Path
    port: int = 8080
    queue_port: int = 0
    tick_seconds: float = 10.0
    env_overrides: dict[str, str] = field(default_factory=dict)
    quiet: bool = False
    # Where the functions' log lines go (appended across restarts); None: the terminal, or nowhere when quiet.
    log_path: pathlib.Path | None = None
    server: Any = None
    functions: subprocess.Popen[bytes] | None = None
    queue: subprocess.Popen[bytes] | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _functions_started: float = 0.0
    _ticker: threading.Thread | None = None
    gemini: Any = None  # dev.standins.gemini.GeminiStandIn once started
    github: Any = None  # dev.standins.github.server.Running once started
    gcp: Any = None  # dev.standins.gcp.server.GcpStandIn once started

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return pg.url(self.server, "planter")

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "PLANTER_ENV": os.environ.get("PLANTER_ENV", "development"),
            "JWT_SECRET": os.environ.get("JWT_SECRET", DEV_JWT_SECRET),
            "STEP_SIGNING_SECRET": os.environ.get("STEP_SIGNING_SECRET", DEV_STEP_SECRET),
            "STEP_PROVIDER": os.environ.get("STEP_PROVIDER", "live"),
            "CORS_ORIGINS": os.environ.get("CORS_ORIGINS", "http://localhost:3000,http://127.0.0.1:3000"),
            # Short local timings: a dead step is noticed in seconds, not minutes.
            "STEP_TIMEOUT_SECONDS": os.environ.get("STEP_TIMEOUT_SECONDS", "10"),
            "REDELIVERY_GRACE_SECONDS": os.environ.get("REDELIVERY_GRACE_SECONDS", "30"),
            "DATABASE_URL": self.database_url,
            "CLOUD_TASKS_ENDPOINT": f"http://127.0.0.1:{self.queue_port}",
            "STEP_URL": f"{self.base_url}/internal/steps",
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            **({"GEMINI_BASE_URL": self.gemini.base_url} if self.gemini is not None else {}),
            **self.github_env(),
            **self.gcp_env(),
            # One process serves every function here, and each open event stream holds a thread.
            "THREADS": os.environ.get("THREADS", "32"),
            **self.env_overrides,
        }
        return env

    def log(self, message: str) -> None:
        if not self.quiet:
            print(f"[planter] {message}", flush=True)

    # --- PostgreSQL -------------------------------------------------------------------------
    def start_postgres(self) -> None:
        started = time.monotonic()
        self.server = pg.start(self.data_dir)
        pg.create_database(pg.url(self.server), "planter")
        pg.migrate(self.database_url)
        self.log(f"PostgreSQL ready and migrated in {time.monotonic() - started:.1f} s")

    def restart_postgres(self) -> None:
        pg.restart(self.server)

    # --- Cloud Tasks stand-in -----------------------------------------------------------------
    @property
    def queue_state(self) -> pathlib.Path:
        """The stand-in's journal: next to the database, so a kept stack keeps its queue too."""
        return self.data_dir.parent / "cloudtasks.jsonl"

    @property
    def queue_ids(self) -> list[str]:
        """Every queue the functions enqueue into: one per task priority (common/config.py)."""
        from common.config import priority_queues

        return list(priority_queues(self.env()).values())

    def start_queue(self) -> None:
        """Start the stand-in and create or update the queues to dev/local_queues.py's configuration."""
        from common.config import Settings, priority_queues
        from dev.local_queues import ensure_queues, priority_queue_config

        if not self.queue_port:
            self.queue_port = free_port()
        output: Any = subprocess.DEVNULL if self.quiet else None
        if self.log_path is not None:  # its dispatch lines next to the functions' (same file)
            output = self.log_path.open("ab")
        self.queue = subprocess.Popen(
            [sys.executable, "-m", "dev.cloudtasks", "--port", str(self.queue_port), "--state", str(self.queue_state)],
            env=self.env(),
            cwd=ROOT,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
        if self.log_path is not None:
            output.close()
        wait_for_port(self.queue_port, 30)
        env = self.env()
        settings = Settings(
            tasks_project=env.get("TASKS_PROJECT", "planter-local"),
            tasks_location=env.get("TASKS_LOCATION", "us-central1"),
            tasks_endpoint=env["CLOUD_TASKS_ENDPOINT"],
        )
        # One queue per task priority, each with its share of the capacity (dev/local_queues.py).
        names = [
            name
            for priority, queue_id in priority_queues(env).items()
            for name in ensure_queues(settings, [queue_id], priority_queue_config(priority))
        ]
        self.log(f"Cloud Tasks stand-in on 127.0.0.1:{self.queue_port}, queue(s) {', '.join(names)}")

    def stop_queue(self) -> None:
        """SIGKILL the stand-in: what it acknowledged is in its journal, what it was sending is not answered."""
        if self.queue is not None:
            os.killpg(self.queue.pid, signal.SIGKILL)
            self.queue.wait()
            self.queue = None

    def restart_queue(self, forget: bool = False) -> None:
        """Kill the stand-in and start it again on the same port. Its queues and pending tasks come
        back from the journal, as Cloud Tasks keeps them through its own restarts; ``forget`` deletes
        the journal first: every queued delivery is lost, and only the reaper can recover."""
        self.stop_queue()
        if forget:
            self.queue_state.unlink(missing_ok=True)
        self.start_queue()

    def restart_emulator(self) -> None:
        """The old emulator's restart (dev/fault_run.py): its queue was in memory, so it is lost."""
        self.restart_queue(forget=True)

    # --- functions ----------------------------------------------------------------------------
    def start_functions(self) -> None:
        self._functions_started = time.monotonic()
        output: Any = subprocess.DEVNULL if self.quiet else None
        if self.log_path is not None:
            output = self.log_path.open("ab")
        self.functions = subprocess.Popen(
            [
                str(VENV_BIN / "functions-framework"),
                "--source",
                str(ROOT / "dev" / "gateway.py"),
                "--target",
                "gateway",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=self.env(),
            cwd=ROOT,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
        if self.log_path is not None:
            output.close()  # the child has its own descriptor
        self.wait_healthy(60)

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.functions is not None and self.functions.poll() is not None:
                raise RuntimeError("the functions process exited during start-up")
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise TimeoutError("the functions did not become healthy")

    def kill_functions(self) -> None:
        """SIGKILL the functions process group: a crash, mid-request."""
        if self.functions is not None:
            os.killpg(self.functions.pid, signal.SIGKILL)
            self.functions.wait()
            self.functions = None

    def watch_functions(self, quick_exits_allowed: int = 3) -> None:
        """Keep the functions serving: a process that dies (a crash, `kill -9`) is started again, as
        Cloud Functions starts a new instance, and the queue and the reaper finish what it was doing.
        Returns when it keeps dying right after starting (a broken configuration, not a crash)."""
        quick_exits = 0
        while True:
            time.sleep(0.5)
            if self.functions is None or self.functions.poll() is None:
                continue
            code = self.functions.returncode
            lived = time.monotonic() - self._functions_started
            quick_exits = quick_exits + 1 if lived < 10 else 0
            if quick_exits >= quick_exits_allowed:
                self.log(f"the functions process keeps exiting (code {code}) right after it starts; stopping")
                return
            self.log(f"the functions process exited (code {code}); starting a new one, as Cloud Functions would")
            try:
                self.start_functions()
            except (RuntimeError, TimeoutError) as error:
                self.log(f"the new functions process did not come up: {error}")

    # --- scheduler ----------------------------------------------------------------------------
    def tick(self) -> dict[str, Any]:
        secret = self.env()["STEP_SIGNING_SECRET"]
        request = urllib.request.Request(
            f"{self.base_url}/internal/scheduler/tick",
            data=TICK_BODY,
            method="POST",
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign_body(TICK_BODY, secret)},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def _tick_forever(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            try:
                self.tick()
            except Exception as error:  # the stack keeps ticking through restarts
                self.log(f"scheduler tick failed: {error}")

    def start_ticker(self) -> None:
        self._ticker = threading.Thread(target=self._tick_forever, daemon=True, name="scheduler")
        self._ticker.start()

    # --- stand-ins for outside services ---------------------------------------------------------
    def start_gemini(self) -> None:
        from dev.standins.gemini import GeminiStandIn

        self.gemini = GeminiStandIn(free_port()).start()
        self.log(f"Gemini stand-in on {self.gemini.base_url}")

    def start_github(self) -> None:
        from dev.standins.github.server import start

        # Next to PostgreSQL's data: the planted repositories survive a restart of make dev.
        self.github = start(self.data_dir.parent / "github", free_port())
        self.log(f"GitHub stand-in on {self.github.base_url} (clone planted repositories from their repo_url)")

    def github_env(self) -> dict[str, str]:
        """The live provider pointed at the GitHub stand-in, and /healthz told which stand-ins are in use."""
        if self.github is None:
            return {}
        from dev.standins.github.templates import PLANTER_ORG, TEMPLATES

        standins = f"github={self.github.base_url}" + (f",gemini={self.gemini.base_url}" if self.gemini else "")
        return {
            "GITHUB_API_URL": self.github.base_url,
            "GITHUB_TOKEN": "local-stand-in-placeholder",  # the stand-in takes any token
            "PLANTER_GITHUB_ORG": PLANTER_ORG,
            "GITHUB_TEMPLATES": ",".join(f"{name}={description}" for name, (description, _) in TEMPLATES.items()),
            "PLANTER_STANDINS": standins,
        }

    def start_gcp(self) -> None:
        from dev.standins.gcp.server import GcpStandIn

        self.gcp = GcpStandIn(free_port()).start()
        self.log(f"Google Cloud stand-in on {self.gcp.base_url} (Resource Manager, Billing, Service Usage, Build, Run)")

    def gcp_env(self) -> dict[str, str]:
        """The Google Cloud steps pointed at the stand-in; its builds call back to this stack."""
        if self.gcp is None:
            return {}
        standins = [self.github_env().get("PLANTER_STANDINS", ""), f"gcp={self.gcp.base_url}"]
        return {
            "GCP_API_URL": self.gcp.base_url,
            "GCP_PROJECT_PARENT": "folders/000000000000",  # placeholders: the stand-in takes any
            "GCP_BILLING_ACCOUNT": "billingAccounts/000000-000000-000000",
            "GCP_BUILD_CHECK_SECONDS": os.environ.get("GCP_BUILD_CHECK_SECONDS", "5"),
            "PLANTER_CALLBACK_BASE_URL": self.base_url,
            "PLANTER_STANDINS": ",".join(s for s in standins if s),
        }

    # --- all together -------------------------------------------------------------------------
    def start(self) -> None:
        self.start_postgres()
        self.start_gemini()
        self.start_github()
        self.start_gcp()
        self.start_queue()
        self.start_functions()
        self.start_ticker()

    def stop(self) -> None:
        self._stop.set()
        for process in (self.functions, self.queue):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        if self.gemini is not None:
            self.gemini.stop()
            self.gemini = None
        if self.github is not None:
            self.github.stop()
            self.github = None
        if self.gcp is not None:
            self.gcp.stop()
            self.gcp = None
        if self.server is not None:
            self.server.cleanup()
            self.server = None


def _ignore_stop_signals() -> None:
    # A second signal must not cut the clean-up short: `kill` of the whole process group reaches
    # this process twice (directly, and forwarded by make), and so does an impatient second Ctrl-C.
    # Interrupted, the clean-up would leave the queue stand-in and the functions running.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def unfinished_tasks_note(database_url: str, data_dir: pathlib.Path) -> str:
    """What the kept database still has running (the reaper resumes it), and how to start afresh."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            count = conn.execute(
                sa.text("SELECT count(*) FROM tasks WHERE status NOT IN ('completed', 'failed', 'cancelled')")
            ).scalar_one()
    finally:
        engine.dispose()
    fresh = f"to start on a fresh database: stop, `rm -rf {data_dir}` (or set PLANTER_DATA_DIR), `make dev`"
    if not count:
        return f"the database in {data_dir} has 0 unfinished tasks ({fresh})"
    return f"the database kept in {data_dir} has {count} unfinished task(s); the scheduler resumes them ({fresh})"


def main() -> None:
    from common.config import load_settings
    from dev.token import user_token

    started = time.monotonic()
    data_dir = pathlib.Path(os.environ.get("PLANTER_DATA_DIR", ROOT / ".local" / "pg"))
    stack = LocalStack(data_dir=data_dir, port=int(os.environ.get("PORT", "8080")))

    def shutdown(signum: int, frame: Any) -> None:
        _ignore_stop_signals()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, shutdown)
    try:
        stack.start()
        stack.log(f"ready in {time.monotonic() - started:.1f} s")
        stack.log(unfinished_tasks_note(stack.database_url, data_dir))
        stack.log(f"base URL: {stack.base_url}  (OpenAPI: {stack.base_url}/openapi.json)")
        token = user_token(settings=load_settings(stack.env()))  # signed as the functions will check it
        stack.log(f"demo bearer token (demo@planter.dev, 12 h):\n{token}")
        # The token rides in the URL fragment, which browsers never send: it reaches no server log.
        stack.log(f"dashboard sign-in link: {stack.base_url}/#token={token}")
        stack.log("Ctrl-C stops everything.")
        stack.watch_functions()
    except KeyboardInterrupt:
        pass
    finally:
        _ignore_stop_signals()
        stack.log("stopping...")
        stack.stop()
        stack.log("stopped")


if __name__ == "__main__":
    main()
