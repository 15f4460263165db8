"""Pushing due tasks to their HTTP targets with a queue's rate limits and retry configuration.

One loop wakes when the store changes or a task falls due, and starts a thread per dispatch
while the queue has a free slot (rate_limits.max_concurrent_dispatches) and a token of its
bucket (rate_limits.max_dispatches_per_second). Each dispatch waits at most the task's
dispatch_deadline; then the attempt is abandoned and counted as a failure (DEADLINE_EXCEEDED).
A 2xx deletes the task; anything else schedules it again after the retry configuration's
backoff (at least the Retry-After of a 429/503), until the queue gives up on it.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import http.client
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

from dev.cloudtasks.model import Queue, Task, format_time
from dev.cloudtasks.store import Store

# System throttling (HttpRequest reference): on 429/503 Cloud Tasks "will use a higher backoff
# rate" for the queue. Modelled as: each such answer halves the queue's effective dispatch rate
# (never below one dispatch a second), each 2xx brings it back up by a quarter.
THROTTLE_FLOOR_PER_SECOND = 1.0
THROTTLE_RECOVERY = 1.25


@dataclass
class QueueLoad:
    in_flight: set[str] = field(default_factory=set)
    tokens: float = 0.0
    refilled: float = 0.0
    rate_factor: float = 1.0  # < 1 while the worker answers 429/503


@dataclass(frozen=True)
class Outcome:
    status: int | None  # HTTP status; None: no answer (refused, reset, deadline)
    error: str = ""
    retry_after: float = 0.0


def parse_retry_after(value: str | None, now: float) -> float:
    """Retry-After as delay-seconds or an HTTP-date; 0 when absent or unreadable."""
    if not value:
        return 0.0
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return 0.0


def send(task: Task, headers: dict[str, str], body: bytes) -> Outcome:
    """One HTTP attempt, abandoned when the dispatch deadline passes: the socket timeout covers a
    silent worker, a timer that shuts the socket down covers one that trickles its answer."""
    url = urllib.parse.urlsplit(task.url)
    connection_type = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    connection = connection_type(url.netloc, timeout=task.dispatch_deadline)
    started = time.monotonic()

    opened: list[socket.socket] = []  # the connection hands its socket to the response: keep our own

    def abandon() -> None:
        for sock in opened:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(task.dispatch_deadline, abandon)
    timer.start()
    try:
        connection.connect()
        opened.append(connection.sock)
        path = url.path + (f"?{url.query}" if url.query else "")
        connection.request(task.method, path or "/", body=body or None, headers=headers)
        response = connection.getresponse()
        response.read()
        if time.monotonic() - started >= task.dispatch_deadline:
            return Outcome(None, "DEADLINE_EXCEEDED")
        return Outcome(response.status, retry_after=parse_retry_after(response.getheader("Retry-After"), time.time()))
    except (TimeoutError, OSError, http.client.HTTPException) as error:
        if time.monotonic() - started >= task.dispatch_deadline or isinstance(error, TimeoutError):
            return Outcome(None, "DEADLINE_EXCEEDED")
        return Outcome(None, f"UNAVAILABLE ({error.__class__.__name__})")
    finally:
        timer.cancel()
        connection.close()


class Dispatcher:
    def __init__(self, store: Store, log: Callable[[str], None], clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.log = log
        self.clock = clock
        self.loads: dict[str, QueueLoad] = {}
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()
        with self.store.changed:
            self.store.changed.notify_all()

    def run(self) -> None:
        with self.store.changed:
            while not self.stopping.is_set():
                wake = self._start_due()
                self.store.changed.wait(timeout=max(0.005, wake - self.clock()))

    def _start_due(self) -> float:
        """Start every dispatch the queues allow now; return when to look again."""
        now = self.clock()
        wake = now + 1.0
        for queue in list(self.store.queues.values()):
            load = self.loads.setdefault(queue.name, QueueLoad(tokens=queue.max_burst_size, refilled=now))
            rate = queue.max_dispatches_per_second * load.rate_factor
            load.tokens = min(queue.max_burst_size, load.tokens + (now - load.refilled) * rate)
            load.refilled = now
            if queue.state != "RUNNING":
                continue
            waiting = sorted(
                (t for t in self.store.tasks.values() if t.queue_name == queue.name and t.name not in load.in_flight),
                key=lambda t: t.schedule_time,
            )
            for task in waiting:
                if task.schedule_time > now:
                    wake = min(wake, task.schedule_time)
                    break
                if len(load.in_flight) >= queue.max_concurrent_dispatches:
                    break  # a finishing dispatch notifies the loop
                if load.tokens < 1:
                    wake = min(wake, now + (1 - load.tokens) / rate)
                    break
                load.tokens -= 1
                load.in_flight.add(task.name)
                self._begin(queue, task, now)
        return wake

    def _begin(self, queue: Queue, task: Task, now: float) -> None:
        task.dispatch_count += 1
        if task.first_attempt_time is None:
            task.first_attempt_time = now
        self.store.save_task(task)
        headers = {
            **task.headers,
            "User-Agent": "Google-Cloud-Tasks",
            "X-CloudTasks-QueueName": queue.short_name,
            "X-CloudTasks-TaskName": task.short_name,
            "X-CloudTasks-TaskRetryCount": str(task.dispatch_count - 1),
            "X-CloudTasks-TaskExecutionCount": str(task.execution_count),
            "X-CloudTasks-TaskETA": f"{task.schedule_time:.6f}",
        }
        if task.last_status is not None:
            headers["X-CloudTasks-TaskPreviousResponse"] = str(task.last_status)
        thread = threading.Thread(target=self._dispatch, args=(queue, task, headers), daemon=True)
        thread.start()

    def _dispatch(self, queue: Queue, task: Task, headers: dict[str, str]) -> None:
        started = self.clock()
        outcome = send(task, headers, base64.b64decode(task.body))
        ended = self.clock()
        with self.store.changed:
            load = self.loads[queue.name]
            load.in_flight.discard(task.name)
            if outcome.status in (429, 503):
                floor = min(1.0, THROTTLE_FLOOR_PER_SECOND / queue.max_dispatches_per_second)
                load.rate_factor = max(floor, load.rate_factor / 2)
            elif outcome.status is not None and outcome.status < 300:
                load.rate_factor = min(1.0, load.rate_factor * THROTTLE_RECOVERY)
            next_step = self._settle(queue, task, outcome, ended)
            self.store.changed.notify_all()
        status = outcome.status if outcome.status is not None else outcome.error
        self.log(
            f"dispatch {task.short_name} queue={queue.short_name} attempt={task.dispatch_count} "
            f"status={status} duration_ms={(ended - started) * 1000:.0f} -> {next_step}"
        )

    def _settle(self, queue: Queue, task: Task, outcome: Outcome, now: float) -> str:
        if task.name not in self.store.tasks:
            return "deleted while in flight"
        if outcome.status is not None:
            task.response_count += 1
            task.execution_count += outcome.status < 500
            task.last_status = outcome.status
        if outcome.status is not None and 200 <= outcome.status < 300:
            self.store.finish(task.name)
            return "done"
        age = now - (task.first_attempt_time or now)
        if queue.retry.gives_up(task.dispatch_count, age):
            self.store.finish(task.name)
            return f"gave up after {task.dispatch_count} attempts"
        delay = queue.retry.backoff(task.dispatch_count)
        if outcome.status in (429, 503):
            delay = max(delay, outcome.retry_after)
        task.schedule_time = now + delay
        self.store.save_task(task)
        return f"retry in {delay:.1f} s (at {format_time(task.schedule_time)})"
