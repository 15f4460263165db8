"""The runtime of one instance: everything a handler or a service uses, built once at the entry
point and passed in as an argument — never fetched from a module global. Tests and benchmarks
build their own (``Runtime(settings=..., db=Database(engine), enqueuer=fake, ...)``) with fakes
by construction.

Cold start: building a Runtime opens no connection and imports no provider client; the engine
is created on first use (``Lazy``) and the registry imports a provider only when a step asks for it.

The runtime also holds what one instance keeps between requests (verified tokens, known users,
the heartbeat thread, the AI client): per runtime, so a test's runtime starts with none of it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import sqlalchemy as sa

from common import db
from common.auth import TokenVerifier
from common.config import Settings
from common.lazy import Lazy
from common.services.heartbeat import Heartbeats
from common.services.users import KnownUsers

if TYPE_CHECKING:
    from common.ai import AIClient
    from common.providers import StepProvider
    from common.queue import Enqueuer

T = TypeVar("T")


class Clock(Protocol):
    """Wall-clock time; tests pass a clock they move by hand."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def time(self) -> float:
        """The current time in seconds since the epoch (what JWT ``exp``/``iat`` compare with)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def time(self) -> float:
        return time.time()


@dataclass(frozen=True)
class Database:
    """The transaction runner: every database access of a service goes through one of these.

    Given an engine (tests, tools), or a ``Lazy`` one (production: created on the first query, so
    a function that never queries, such as openapi, never builds it)."""

    source: sa.Engine | Lazy[sa.Engine]

    @property
    def engine(self) -> sa.Engine:
        return self.source.get() if isinstance(self.source, Lazy) else self.source

    def transaction(self, work: Callable[[sa.Connection], T]) -> T:
        """``work`` in one transaction, committed; retried once on a dead connection."""
        return db.run_in_transaction(work, engine=self.engine)

    def statement(self, work: Callable[[sa.Connection], T]) -> T:
        """``work`` that issues ONE statement (atomic alone), with no BEGIN/COMMIT around it."""
        return db.run_statement(work, engine=self.engine)

    def prepared(self, sql: str, params: dict[str, Any]) -> db.Rows:
        """ONE prepared statement alone (db.run_prepared): the hot reads and the progress callback."""
        return db.run_prepared(sql, params, engine=self.engine)

    def ping(self) -> None:
        db.ping(self.engine)

    def dispose(self) -> None:
        """Close the pool's connections (a test's database is dropped after this)."""
        if not isinstance(self.source, Lazy) or self.source.built:
            self.engine.dispose()


ProviderFactory = Callable[[str], "StepProvider"]


@dataclass(frozen=True)
class ProviderRegistry:
    """The step providers by name, each built on first use (the live one imports the Google and
    GitHub clients: only the function that runs steps pays for that) and then kept."""

    factory: ProviderFactory
    default: str
    _built: dict[str, StepProvider] = field(default_factory=dict, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def get(self, name: str | None = None) -> StepProvider:
        name = name or self.default
        with self._lock:
            if name not in self._built:
                self._built[name] = self.factory(name)
            return self._built[name]

    @classmethod
    def of(cls, provider: StepProvider, name: str = "simulated") -> ProviderRegistry:
        """A registry holding one ready provider (tests, benchmarks)."""
        return cls(factory=lambda _: provider, default=name)


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    db: Database
    enqueuer: Enqueuer
    providers: ProviderRegistry
    clock: Clock = field(default_factory=SystemClock)
    # Per-instance state derived from the above (rebuilt by dataclasses.replace, never shared).
    tokens: TokenVerifier = field(init=False, repr=False, compare=False)
    users: KnownUsers = field(init=False, repr=False, compare=False)
    heartbeats: Heartbeats = field(init=False, repr=False, compare=False)
    _ai: Lazy[AIClient] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # object.__setattr__: the dataclass is frozen; these are set once, here.
        object.__setattr__(self, "tokens", TokenVerifier(self.settings, self.clock))
        object.__setattr__(self, "users", KnownUsers())
        object.__setattr__(self, "heartbeats", Heartbeats(self.db))
        object.__setattr__(self, "_ai", Lazy(self._build_ai))

    def _build_ai(self) -> AIClient:
        from common.ai import build_client

        # One client per instance: google-genai keeps its connections between requests.
        return build_client(self.settings)

    @property
    def ai(self) -> AIClient:
        return self._ai.get()


def build_runtime(settings: Settings, *, clock: Clock | None = None) -> Runtime:
    """The production runtime for ``settings``: the real engine, Cloud Tasks and providers."""
    from common.providers import build_provider
    from common.queue import CloudTasksEnqueuer

    clock = clock or SystemClock()
    return Runtime(
        settings=settings,
        db=Database(Lazy(lambda: db.create_engine(settings))),
        enqueuer=CloudTasksEnqueuer(settings),
        providers=ProviderRegistry(
            factory=lambda name: build_provider(name, settings, clock), default=settings.step_provider
        ),
        clock=clock,
    )
