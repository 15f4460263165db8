"""The heartbeat thread is woken only for a run due before its next wake-up: such a run must still
be beaten on time (a database stand-in records the beats; the integration tests beat real leases)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

from common.runtime import Database
from common.services.heartbeat import Heartbeats


class RecordedBeats:
    """Answers every beat "ok" and notes when it came (what Heartbeats uses of a Database)."""

    def __init__(self) -> None:
        self.at: list[float] = []

    def statement(self, work: Callable[[Any], Any]) -> str:
        self.at.append(time.monotonic())
        return "ok"


def test_a_run_due_before_the_threads_next_wake_up_is_beaten_on_time() -> None:
    db = RecordedBeats()
    beats = Heartbeats(cast(Database, db), name="heartbeat-wakeups")
    slow, quick = uuid.uuid4(), uuid.uuid4()
    with beats.keep(uuid.uuid4(), "creating_org", slow, timeout=40, expected=60, stop=threading.Event()):
        time.sleep(0.2)  # the thread now sleeps toward the slow run's first beat, 5 s away
        registered = time.monotonic()
        with beats.keep(uuid.uuid4(), "creating_org", quick, timeout=2, expected=60, stop=threading.Event()):
            deadline = registered + 3
            while not db.at and time.monotonic() < deadline:
                time.sleep(0.05)
    # Beaten after its 0.5 s interval, long before the slow run's beat would have woken the thread.
    assert db.at and db.at[0] - registered < 3
