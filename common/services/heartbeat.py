"""One heartbeat thread per process keeps the leases of all its running steps alive.

A step's run registers its claim for as long as the provider works. The thread beats each claim
every quarter of its timeout (0.5-5 s): the lease is extended, or the beat finds the task ended
(the run's ``stop`` event is set: a provider that waits on it gives up, and the step is recorded
skipped) or the lease lost (the run is left to finish; it records nothing unless its claim still
holds). A run still going after twice its step's expected time is reported once. Steps shorter
than a beat never touch the database.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from common.log import get_logger
from common.queries import steps as q

if TYPE_CHECKING:
    from common.runtime import Database

logger = get_logger("planter.steps")
LONG_RUN_FACTOR = 2


@dataclass
class _Run:
    task_id: uuid.UUID
    step: str
    claim_id: uuid.UUID
    timeout: float
    stop: threading.Event
    interval: float
    long_after: float
    started: float
    next_beat: float
    warned: bool = False

    def fields(self, now: float) -> dict[str, dict[str, object]]:
        seconds = round(now - self.started, 1)
        return {"fields": {"task_id": str(self.task_id), "step": self.step, "running_seconds": seconds}}


@dataclass
class Heartbeats:
    """The instance's heartbeat (``rt.heartbeats``): ``with rt.heartbeats.keep(...)`` around a provider's run.

    Its clock is monotonic: it only measures intervals between beats, which a thread waits for."""

    db: Database
    clock: Callable[[], float] = time.monotonic
    name: str = "heartbeat"  # of its thread
    _runs: dict[uuid.UUID, _Run] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _changed: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    # When the thread wakes next on its own. A run due later needs no wake-up: registering one per
    # step would otherwise switch to the thread and back on every step of a busy worker.
    _wakes_at: float = float("-inf")

    @contextmanager
    def keep(
        self,
        task_id: uuid.UUID,
        step: str,
        claim_id: uuid.UUID,
        *,
        timeout: float,
        expected: float,
        stop: threading.Event,
    ) -> Iterator[None]:
        now = self.clock()
        interval = max(0.5, min(timeout / 4, 5.0))
        run = _Run(
            task_id, step, claim_id, timeout, stop, interval, max(LONG_RUN_FACTOR * expected, 2 * interval), now, now
        )
        run.next_beat = now + interval
        with self._lock:
            self._runs[claim_id] = run
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, daemon=True, name=self.name)
                self._thread.start()
            sooner = run.next_beat < self._wakes_at
        if sooner:
            self._changed.set()
        try:
            yield
        finally:
            with self._lock:
                self._runs.pop(claim_id, None)

    def _loop(self) -> None:
        while True:
            # Cleared before reading the runs: a run registered from here on is either among the
            # upcoming ones read below, or compared with the wake time set there (and sets the
            # event if it is due sooner), so the wait cannot sleep past its first beat.
            self._changed.clear()
            with self._lock:
                runs = list(self._runs.values())
            now = self.clock()
            for run in runs:
                if run.next_beat <= now:
                    self._beat(run)
            with self._lock:
                upcoming = [r.next_beat for r in self._runs.values()]
                wait = max(0.05, min(upcoming) - self.clock()) if upcoming else 30.0
                self._wakes_at = self.clock() + wait
            self._changed.wait(wait)

    def _beat(self, run: _Run) -> None:
        run.next_beat = self.clock() + run.interval
        try:
            beat = self.db.statement(lambda conn: q.heartbeat(conn, run.task_id, run.step, run.claim_id, run.timeout))
        except Exception:
            logger.warning("heartbeat failed", exc_info=True, extra=run.fields(self.clock()))
            return
        if beat == "ended":
            logger.warning("step run stopped: its task ended", extra=run.fields(self.clock()))
            run.stop.set()
            self._forget(run)
        elif beat == "lost":
            logger.warning("step lease lost: no longer extended", extra=run.fields(self.clock()))
            self._forget(run)
        elif not run.warned and self.clock() - run.started > run.long_after:
            run.warned = True
            logger.warning("step runs long", extra=run.fields(self.clock()))

    def _forget(self, run: _Run) -> None:
        with self._lock:
            if self._runs.get(run.claim_id) is run:
                del self._runs[run.claim_id]
