"""Shared fixtures: a real PostgreSQL started by the suite, a migrated template database cloned
for each test, the test's runtime (built by construction: its settings, that database, a recording
enqueuer, the simulated provider, a clock), the gateway app around it, and tokens."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import pathlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
import sqlalchemy as sa

from common import db
from common.auth import issue_callback_token
from common.config import Settings, load_settings
from common.providers.simulated import SimulatedProvider
from common.runtime import Database, ProviderRegistry, Runtime
from dev import pg

# pgserver logs from an atexit hook after pytest closed its streams; keep it quiet.
logging.getLogger("pgserver").setLevel(logging.WARNING)
TEST_JWT_SECRET = "test-jwt-secret-for-the-suite-only-0123456789"
TEST_STEP_SECRET = "test-step-secret-for-the-suite-only-0123456789"
# A database URL nothing answers at (its socket's directory does not exist).
DEAD_DATABASE = "postgresql+pg8000://postgres@/planter?unix_sock=/tmp/planter-no-such-dir/.s.PGSQL.5432"
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


def suite_settings(**overrides: str) -> Settings:
    """The suite's settings, read from a dict (never from the process environment)."""
    return load_settings({**_BASE_ENV, **overrides})


@pytest.fixture
def database_url(pg_server: Any, template_db: str) -> str:
    name = f"t{os.getpid()}_{next(_counter)}"
    pg.create_database(pg.url(pg_server), name, template=template_db)
    return pg.url(pg_server, name)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return suite_settings(DATABASE_URL=database_url)


@pytest.fixture
def engine(settings: Settings) -> Iterator[sa.Engine]:
    engine = db.create_engine(settings)
    yield engine
    engine.dispose()


class ManualClock:
    """The wall clock, until a test moves it by hand (verified-token expiry, billing periods...)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


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
def enqueued() -> RecordingEnqueuer:
    return RecordingEnqueuer()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def runtime(settings: Settings, engine: sa.Engine, enqueued: RecordingEnqueuer, clock: ManualClock) -> Runtime:
    """The test's runtime: its own database, a recording enqueuer, the simulated provider on the
    test's clock (which reads the wall clock until the test moves it)."""
    return Runtime(
        settings=settings,
        db=Database(engine),
        enqueuer=enqueued,
        providers=ProviderRegistry.of(SimulatedProvider(clock=clock.time)),
        clock=clock,
    )


def with_settings(runtime: Runtime, **changes: Any) -> Runtime:
    """The same runtime under other settings (a fresh instance: no verified tokens or users kept)."""
    return dataclasses.replace(runtime, settings=dataclasses.replace(runtime.settings, **changes))


@pytest.fixture
def client(runtime: Runtime) -> Any:
    from dev.gateway import create_app

    return create_app(runtime).test_client()


@pytest.fixture
def client_with(runtime: Runtime) -> Callable[..., Any]:
    """A client of the gateway under other settings: ``client_with(max_body_bytes=1000)``."""
    from dev.gateway import create_app

    def build(**changes: Any) -> Any:
        return create_app(with_settings(runtime, **changes)).test_client()

    return build


def make_token(email: str = "alice@example.test", secret: str = TEST_JWT_SECRET, **claims: Any) -> str:
    now = int(time.time())
    body: dict[str, Any] = {"email": email, "sub": f"sub-{email}", "iat": now, "exp": now + 600, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm="HS256")


@pytest.fixture
def auth_header() -> Callable[..., dict[str, str]]:
    def build(email: str = "alice@example.test", **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {make_token(email, **claims)}"}

    return build


def callback_token(task_id: str, ttl_seconds: int | None = None) -> str:
    """A progress-callback token for ``task_id`` under the suite's settings."""
    return issue_callback_token(task_id, suite_settings(), time.time(), ttl_seconds)


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
def gemini(gemini_server: Any) -> Any:
    """The stand-in with no faults and no recorded requests (``gemini_client`` points at it)."""
    with gemini_server.lock:
        gemini_server.faults.clear()
        gemini_server.requests.clear()
    return gemini_server


@pytest.fixture
def wire(database_url: str) -> Iterator[Any]:
    """A proxy to the test's database that counts round trips (tests/wire.py)."""
    from tests.wire import Wire

    path = pathlib.Path(tempfile.mkdtemp(prefix="w", dir="/tmp")) / "s"  # a unix socket path must stay short
    counted = Wire(database_url, str(path))
    yield counted
    counted.close()
    shutil.rmtree(path.parent, ignore_errors=True)


@pytest.fixture
def wired(runtime: Runtime, wire: Any) -> Iterator[Runtime]:
    """The test's runtime with its database reached through the counting proxy."""
    settings = dataclasses.replace(runtime.settings, database_url=wire.url)
    engine = db.create_engine(settings)
    yield dataclasses.replace(runtime, settings=settings, db=Database(engine))
    engine.dispose()


@pytest.fixture
def wired_client(wired: Runtime) -> Any:
    from dev.gateway import create_app

    return create_app(wired).test_client()


@pytest.fixture
def gemini_client(gemini: Any, runtime: Runtime) -> Any:
    """A client of the gateway whose runtime's AI service is the stand-in."""
    from dev.gateway import create_app

    return create_app(with_settings(runtime, ai_base_url=gemini.base_url)).test_client()
