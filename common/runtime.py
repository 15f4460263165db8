"""The runtime of one instance: everything a handler or a service uses, built once at the entry
point and passed in as an argument — never fetched from a module global. Tests and benchmarks
build their own (``Runtime(settings=..., db=Database(engine), enqueuer=fake, ...)``) with fakes
by construction.

Cold start: building a Runtime opens no connection and imports no provider client; the engine
connects on first use and the registry imports a provider only when a step asks for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

import sqlalchemy as sa

from common import db
from common.config import Settings

if TYPE_CHECKING:
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
    """The transaction runner: every database access of a service goes through one of these."""

    engine: sa.Engine

    def transaction(self, work: Callable[[sa.Connection], T]) -> T:
        """``work`` in one transaction, committed; retried once on a dead connection."""
        return db.run_in_transaction(work, engine=self.engine)

    def statement(self, work: Callable[[sa.Connection], T]) -> T:
        """``work`` that issues ONE statement (atomic alone), with no BEGIN/COMMIT around it."""
        return db.run_statement(work, engine=self.engine)

    def ping(self) -> None:
        db.ping(self.engine)


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


def build_runtime(settings: Settings, *, clock: Clock | None = None) -> Runtime:
    """The production runtime for ``settings``: the real engine, Cloud Tasks and providers."""
    from common.providers import build_provider
    from common.queue import CloudTasksEnqueuer

    clock = clock or SystemClock()
    return Runtime(
        settings=settings,
        db=Database(db.create_engine(settings)),
        enqueuer=CloudTasksEnqueuer(settings),
        providers=ProviderRegistry(
            factory=lambda name: build_provider(name, settings, clock), default=settings.step_provider
        ),
        clock=clock,
    )
