"""Shared fixtures: a real PostgreSQL started by the suite, a migrated template database cloned
for each test, the gateway app, and tokens."""

from __future__ import annotations

import itertools
import logging
import os
import pathlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import jwt
import pytest
import sqlalchemy as sa

from common import config, db, queue
from common.services import users
from dev import pg

os.environ.setdefault("PLANTER_ENV", "test")
# pgserver logs from an atexit hook after pytest closed its streams; keep it quiet.
logging.getLogger("pgserver").setLevel(logging.WARNING)
TEST_JWT_SECRET = "test-jwt-secret-for-the-suite-only-0123456789"
TEST_STEP_SECRET = "test-step-secret-for-the-suite-only-0123456789"
_BASE_ENV = {
    "PLANTER_ENV": "test",
    "JWT_SECRET": TEST_JWT_SECRET,
    "STEP_SIGNING_SECRET": TEST_STEP_SECRET,
    "STEP_PROVIDER": "simulated",
    "CORS_ORIGINS": "https://app.example.test",
}
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    # Short path: the unix socket path must stay under ~100 characters.
    path = pathlib.Path(tempfile.mkdtemp(prefix="pt", dir="/tmp"))
    server = pg.start(path)
    # A throwaway cluster: durability settings off make database-per-test cheap and shutdown quick.
    engine = sa.create_engine(pg.url(server), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for setting in ("fsync", "full_page_writes", "synchronous_commit"):
            conn.execute(sa.text(f"ALTER SYSTEM SET {setting} = off"))
        conn.execute(sa.text("SELECT pg_reload_conf()"))
    engine.dispose()
    yield server
    server.cleanup()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_server: Any) -> str:
    """A database migrated to head once per session, cloned for each test."""
    name = f"template_{os.getpid()}"
    pg.create_database(pg.url(pg_server), name)
    pg.migrate(pg.url(pg_server, name))
    return name


def apply_env(monkeypatch: pytest.MonkeyPatch, **overrides: str) -> None:
    """Set the environment and make the process re-read it (settings, engine, caches)."""
    for key, value in {**_BASE_ENV, **overrides}.items():
        monkeypatch.setenv(key, value)
    config.get_settings.cache_clear()
    db.reset_engine()
    users.forget_users()


@pytest.fixture
def database_url(pg_server: Any, template_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"t{os.getpid()}_{next(_counter)}"
    pg.create_database(pg.url(pg_server), name, template=template_db)
    url = pg.url(pg_server, name)
    apply_env(monkeypatch, DATABASE_URL=url)
    yield url
    db.reset_engine()
    config.get_settings.cache_clear()


@pytest.fixture
def engine(database_url: str) -> sa.Engine:
    return db.get_engine()


class RecordingEnqueuer:
    """Satisfies queue.Enqueuer; remembers what would have gone to Cloud Tasks."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []
        self.priorities: list[str] = []
        # Later deliveries asked for: (task_id, step, generation, at, name suffix).
        self.scheduled: list[tuple[str, str, int, datetime, str]] = []

    def enqueue_step(self, task_id: str, step: str, generation: int, priority: str = "normal") -> None:
        self.calls.append((task_id, step, generation))
        self.priorities.append(priority)

    def schedule_step(
        self, task_id: str, step: str, generation: int, *, at: datetime, suffix: str, priority: str = "normal"
    ) -> None:
        self.scheduled.append((task_id, step, generation, at, suffix))


@pytest.fixture
def enqueued() -> Iterator[RecordingEnqueuer]:
    recorder = RecordingEnqueuer()
    queue.set_enqueuer(recorder)
    yield recorder
    queue.set_enqueuer(None)


@pytest.fixture
def client(database_url: str, enqueued: RecordingEnqueuer) -> Any:
    from dev.gateway import create_app

    return create_app().test_client()


def make_token(email: str = "alice@example.test", secret: str = TEST_JWT_SECRET, **claims: Any) -> str:
    now = int(time.time())
    body: dict[str, Any] = {"email": email, "sub": f"sub-{email}", "iat": now, "exp": now + 600, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm="HS256")


@pytest.fixture
def auth_header() -> Callable[..., dict[str, str]]:
    def build(email: str = "alice@example.test", **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {make_token(email, **claims)}"}

    return build


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture(scope="session")
def gemini_server() -> Iterator[Any]:
    """The local Gemini stand-in (dev/standins/gemini.py) on a free port, for the whole session."""
    from dev.standins.gemini import GeminiStandIn

    standin = GeminiStandIn().start()
    yield standin
    standin.stop()


@pytest.fixture
def gemini(gemini_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The stand-in with no faults and no recorded requests; the app's settings point at it."""
    with gemini_server.lock:
        gemini_server.faults.clear()
        gemini_server.requests.clear()
    monkeypatch.setenv("GEMINI_BASE_URL", gemini_server.base_url)
    config.get_settings.cache_clear()
    return gemini_server


@pytest.fixture
def wire(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The application's database reached through a proxy that counts round trips (tests/wire.py)."""
    from tests.wire import Wire

    path = pathlib.Path(tempfile.mkdtemp(prefix="w", dir="/tmp")) / "s"  # a unix socket path must stay short
    counted = Wire(database_url, str(path))
    apply_env(monkeypatch, DATABASE_URL=counted.url)
    yield counted
    db.reset_engine()
    counted.close()
    shutil.rmtree(path.parent, ignore_errors=True)
