"""The local Cloud Tasks stand-in (dev/cloudtasks), driven by the real google-cloud-tasks client,
checked against what the Cloud Tasks documentation says. Each test cites the passage it checks.

The stand-in runs as the local stack runs it (a subprocess with a journal file); its target is a
small HTTP server in this process whose behaviour each task carries in its own headers
(``X-Test-Behaviour``), so a test scripts its worker by creating tasks.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from google.api_core import exceptions

from common.config import Settings
from dev.cloudtasks.model import RetryConfig
from tests.e2e.queue_standin_support import (
    PARENT,
    Standin,
    Target,
    add_task,
    gaps,
    make_queue,
    serve_target,
    wait_until,
)


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    recorder, server = serve_target()
    yield recorder
    server.stop()


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standin]:
    process = Standin(tmp_path_factory.mktemp("cloudtasks"))
    yield process
    process.kill()


def test_schedule_time_and_the_headers_of_an_http_target(standin: Standin, target: Target) -> None:
    """Task.schedule_time: "The time when the task is scheduled to be attempted" — not before it.
    HttpRequest: the worker receives the task's own headers and body, and Cloud Tasks adds
    X-CloudTasks-QueueName, -TaskName, -TaskRetryCount (0 on the first attempt),
    -TaskExecutionCount and -TaskETA (the schedule time, in seconds since the epoch)."""
    queue = make_queue(standin, "scheduled")
    due = datetime.now(UTC) + timedelta(seconds=2)
    created = add_task(standin, target, queue, "later-1", schedule_time=due)
    assert created.schedule_time.timestamp() == pytest.approx(due.timestamp(), abs=0.001)
    add_task(standin, target, queue, "now-1")

    wait_until(lambda: target.arrivals_of("later-1"), 10, "the scheduled task")
    now_arrival, later_arrival = target.arrivals_of("now-1")[0], target.arrivals_of("later-1")[0]
    assert later_arrival.at >= due.timestamp()
    assert later_arrival.at - due.timestamp() < 1.0  # and soon after it
    assert now_arrival.at < due.timestamp() - 1  # a task without schedule_time goes at once

    headers = later_arrival.headers
    assert headers["X-CloudTasks-QueueName"] == "scheduled"
    assert headers["X-CloudTasks-TaskName"] == "later-1"
    assert headers["X-CloudTasks-TaskRetryCount"] == "0"
    assert headers["X-CloudTasks-TaskExecutionCount"] == "0"
    assert float(headers["X-CloudTasks-TaskETA"]) == pytest.approx(due.timestamp(), abs=0.001)
    assert headers["X-Test-Behaviour"] == "ok" and headers["Content-Type"] == "application/json"
    assert later_arrival.body == b'{"task": "later-1"}'
    # One log line per dispatch: task, status, duration, attempt.
    wait_until(lambda: "dispatch later-1 " in standin.log(), 5, "the dispatch log line")
    assert re.search(r"dispatch later-1 queue=scheduled attempt=1 status=200 duration_ms=\d+ -> done", standin.log())


def test_task_names_are_deduplicated(standin: Standin, target: Target) -> None:
    """CreateTaskRequest.task, "Task De-duplication": a task ID identical to that of an existing task
    or of one deleted or executed recently fails with ALREADY_EXISTS (409 over REST, which the
    client raises as Conflict); for a queue created through Cloud Tasks the name stays taken 1 hour.
    An unknown queue is NOT_FOUND (404)."""
    queue = make_queue(standin, "dedup")
    future = datetime.now(UTC) + timedelta(seconds=60)
    add_task(standin, target, queue, "pending-1", schedule_time=future)
    with pytest.raises(exceptions.Conflict, match="existed too recently") as raised:
        add_task(standin, target, queue, "pending-1")
    assert raised.value.code == 409

    add_task(standin, target, queue, "executed-1")
    wait_until(lambda: target.arrivals_of("executed-1"), 10, "the first task to run")
    wait_until(lambda: "dispatch executed-1 " in standin.log(), 5, "its completion")
    with pytest.raises(exceptions.Conflict):
        add_task(standin, target, queue, "executed-1")

    standin.client.delete_task(name=f"{queue}/tasks/pending-1")
    with pytest.raises(exceptions.Conflict):
        add_task(standin, target, queue, "pending-1")
    time.sleep(0.5)
    assert len(target.arrivals_of("executed-1")) == 1 and not target.arrivals_of("pending-1")

    with pytest.raises(exceptions.NotFound):
        add_task(standin, target, f"{PARENT}/queues/no-such-queue", "orphan-1")
    with pytest.raises(exceptions.Conflict):
        make_queue(standin, "dedup")


def test_failures_back_off_per_the_retry_config(standin: Standin, target: Target) -> None:
    """RetryConfig: the retry interval starts at min_backoff, doubles max_doublings times, then grows
    linearly by 2^max_doublings x min_backoff, capped at max_backoff; the task is attempted
    max_attempts times in all (then deleted). HttpRequest: any non-2xx answer is a failure."""
    # min 1 s, one doubling, max 4 s: retries 1 s, 2 s, 2 + 2 = 4 s, then capped at 4 s.
    queue = make_queue(
        standin, "backoff", max_attempts=5, min_backoff={"seconds": 1}, max_backoff={"seconds": 4}, max_doublings=1
    )
    add_task(standin, target, queue, "failing-1", behaviour="fail")
    wait_until(lambda: len(target.arrivals_of("failing-1")) >= 5, 30, "five attempts")
    time.sleep(5)  # a sixth would come 4 s after the fifth
    arrivals = target.arrivals_of("failing-1")
    assert len(arrivals) == 5
    assert [a.headers["X-CloudTasks-TaskRetryCount"] for a in arrivals] == ["0", "1", "2", "3", "4"]
    # 5xx answers are not executions; the previous answer is passed on.
    assert {a.headers["X-CloudTasks-TaskExecutionCount"] for a in arrivals} == {"0"}
    assert arrivals[1].headers["X-CloudTasks-TaskPreviousResponse"] == "500"
    for measured, expected in zip(gaps(arrivals), [1.0, 2.0, 4.0, 4.0], strict=True):
        assert expected - 0.05 <= measured < expected + 0.6, gaps(arrivals)
    with pytest.raises(exceptions.NotFound):
        standin.client.get_task(name=f"{queue}/tasks/failing-1")
    assert "gave up after 5 attempts" in standin.log()


def test_the_backoff_formula_matches_the_documented_example() -> None:
    """RetryConfig.max_doublings: "if min_backoff is 10s, max_backoff is 300s, and max_doublings is 3,
    then the task will first be retried in 10s. The retry interval will double three times, and then
    increase linearly by 2^3 * 10s. Finally, the task will retry at intervals of max_backoff until the
    task has been attempted max_attempts times. Thus, the requests will retry at 10s, 20s, 40s, 80s,
    160s, 240s, 300s, 300s, ...". max_attempts -1 is unlimited."""
    config = RetryConfig(max_attempts=-1, min_backoff=10, max_backoff=300, max_doublings=3)
    assert [config.backoff(n) for n in range(1, 9)] == [10, 20, 40, 80, 160, 240, 300, 300]
    assert not config.gives_up(attempts=10_000, age=0)
    assert RetryConfig(max_attempts=3).gives_up(attempts=3, age=0)
    # Both limits must be met when max_retry_duration is set.
    assert not RetryConfig(max_attempts=3, max_retry_duration=60).gives_up(attempts=3, age=10)


def test_retry_after_is_honoured_on_429_and_503(standin: Standin, target: Target) -> None:
    """HttpRequest, "System throttling": if the worker returns 429 (Too Many Requests) or 503 (Service
    Unavailable), "The retry specified in the Retry-After HTTP response header is considered": the
    next attempt does not come before it, even when the queue's min_backoff is shorter."""
    queue = make_queue(standin, "retry-after", min_backoff={"seconds": 1})
    add_task(standin, target, queue, "busy-503", behaviour="throttle:503:3")
    add_task(standin, target, queue, "busy-429", behaviour="throttle:429:2")
    add_task(standin, target, queue, "plain-500", behaviour="fail")
    wait_until(
        lambda: len(target.arrivals_of("busy-503")) >= 2 and len(target.arrivals_of("busy-429")) >= 2,
        15,
        "the throttled tasks' second attempts",
    )
    assert 3.0 <= gaps(target.arrivals_of("busy-503"))[0] < 4.0
    assert 2.0 <= gaps(target.arrivals_of("busy-429"))[0] < 3.0
    # A 500 without Retry-After retries after min_backoff alone.
    assert 1.0 <= gaps(target.arrivals_of("plain-500"))[0] < 1.9


def test_the_dispatch_deadline_is_enforced(standin: Standin, target: Target) -> None:
    """Task.dispatch_deadline: "If the worker does not respond by this deadline then the request is
    cancelled and the attempt is marked as a DEADLINE_EXCEEDED failure. Cloud Tasks will retry the
    task according to the RetryConfig." For HTTP tasks it must lie between 15 seconds and 30 minutes."""
    queue = make_queue(standin, "deadline", min_backoff={"seconds": 1})
    with pytest.raises(exceptions.BadRequest):
        add_task(standin, target, queue, "too-short", dispatch_deadline={"seconds": 5})
    add_task(standin, target, queue, "stuck-1", behaviour="hold:25", dispatch_deadline={"seconds": 15})
    add_task(standin, target, queue, "trickling-1", behaviour="trickle:25", dispatch_deadline={"seconds": 15})
    wait_until(
        lambda: len(target.arrivals_of("stuck-1")) >= 2 and len(target.arrivals_of("trickling-1")) >= 2,
        30,
        "the retries after the deadline",
    )
    for task in ("stuck-1", "trickling-1"):
        first, second = target.arrivals_of(task)[:2]
        # Abandoned at 15 s (the worker still at it, silent or trickling), retried after min_backoff.
        assert 15.9 <= second.at - first.at < 17.5, task
        assert second.headers["X-CloudTasks-TaskRetryCount"] == "1"
    assert re.search(
        r"dispatch stuck-1 queue=deadline attempt=1 status=DEADLINE_EXCEEDED duration_ms=15\d\d\d", standin.log()
    )


def test_dispatches_run_concurrently_up_to_each_queues_limit(standin: Standin, target: Target) -> None:
    """RateLimits.max_concurrent_dispatches: "The maximum number of concurrent tasks that Cloud Tasks
    allows to be dispatched for this queue. After this threshold has been reached, Cloud Tasks stops
    dispatching tasks until the number of concurrent requests decreases." Each queue has its own."""
    narrow = make_queue(standin, "narrow", concurrent=1)
    wide = make_queue(standin, "wide", concurrent=3)
    started = time.time()
    for i in range(3):
        add_task(standin, target, narrow, f"narrow-{i}", behaviour="hold:1")
    for i in range(9):
        add_task(standin, target, wide, f"wide-{i}", behaviour="hold:1")
    wait_until(lambda: len([a for a in target.arrivals if a.task.startswith("wide-")]) == 9, 15, "the wide queue")
    wait_until(lambda: len([a for a in target.arrivals if a.task.startswith("narrow-")]) == 3, 15, "the narrow one")
    assert target.most_in_flight["wide"] == 3  # concurrent up to the limit...
    assert target.most_in_flight["narrow"] == 1  # ...and not beyond, queue by queue
    wide_starts = sorted(a.at - started for a in target.arrivals if a.task.startswith("wide-"))
    # Three waves of three one-second requests.
    assert wide_starts[2] < 0.9 and 0.9 < wide_starts[3] < 1.9 and 1.9 < wide_starts[6] < 2.9, wide_starts


def test_dispatches_per_second_are_limited(standin: Standin, target: Target) -> None:
    """RateLimits.max_dispatches_per_second: "The maximum rate at which tasks are dispatched from this
    queue", a token bucket whose size (max_burst_size, output only) Cloud Tasks derives from the rate."""
    queue = make_queue(standin, "slow-rate", rate=5)
    assert standin.client.get_queue(name=queue).rate_limits.max_burst_size == 5
    for i in range(15):
        add_task(standin, target, queue, f"rated-{i}")
    wait_until(lambda: len([a for a in target.arrivals if a.task.startswith("rated-")]) == 15, 15, "15 dispatches")
    times = sorted(a.at for a in target.arrivals if a.task.startswith("rated-"))
    # A burst of 5, then 5 a second: the last of 15 about 2 s after the first.
    assert times[-1] - times[0] >= 1.7
    for start in times:
        assert len([t for t in times if start <= t < start + 1.0]) <= 10  # bucket + one second's refill


def test_queues_and_pending_tasks_survive_a_restart(standin: Standin, target: Target) -> None:
    """Cloud Tasks keeps a queue's configuration and its tasks until they run or are deleted; the
    stand-in journals them, so a kill -9 and a start on the same port loses neither (nor the names
    used recently, which still de-duplicate)."""
    queue = make_queue(standin, "durable", concurrent=2, max_attempts=7)
    due = datetime.now(UTC) + timedelta(seconds=4)
    add_task(standin, target, queue, "kept-1", schedule_time=due)
    add_task(standin, target, queue, "kept-2", schedule_time=due)
    add_task(standin, target, queue, "ran-before")
    wait_until(lambda: target.arrivals_of("ran-before") and "dispatch ran-before " in standin.log(), 10, "a run")

    standin.kill()
    standin.start()
    restored = standin.client.get_queue(name=queue)
    assert restored.rate_limits.max_concurrent_dispatches == 2 and restored.retry_config.max_attempts == 7
    names = sorted(t.name.rsplit("/", 1)[1] for t in standin.client.list_tasks(parent=queue))
    assert names == ["kept-1", "kept-2"]
    kept = standin.client.get_task(name=f"{queue}/tasks/kept-1")
    assert base64.b64decode(base64.b64encode(kept.http_request.body)) == b'{"task": "kept-1"}'
    with pytest.raises(exceptions.Conflict):
        add_task(standin, target, queue, "ran-before")

    wait_until(lambda: target.arrivals_of("kept-1") and target.arrivals_of("kept-2"), 10, "the kept tasks")
    assert target.arrivals_of("kept-1")[0].at >= due.timestamp()


def test_429_and_503_answers_slow_the_whole_queue(standin: Standin, target: Target) -> None:
    """HttpRequest, "System throttling": "Cloud Tasks may temporarily reduce the queue's effective
    rate ... if the worker returns 429 (Too Many Requests), 503 (Service Unavailable), or the rate
    of errors is high, Cloud Tasks will use a higher backoff rate." The stand-in halves the queue's
    effective rate per such answer (down to one dispatch a second) and recovers it on 2xx: other
    tasks of that queue wait, those of a queue answered 2xx do not."""
    throttled = make_queue(standin, "throttled", rate=10)
    control = make_queue(standin, "control", rate=10)
    for i in range(10):
        add_task(standin, target, throttled, f"overloaded-{i}", behaviour="throttle:503:30")
    wait_until(lambda: len([a for a in target.arrivals if a.task.startswith("overloaded-")]) == 10, 10, "503s")
    time.sleep(0.3)  # let the answers come back
    for i in range(10):
        add_task(standin, target, throttled, f"behind-{i}")
        add_task(standin, target, control, f"unhindered-{i}")
    wait_until(lambda: len([a for a in target.arrivals if a.task.startswith("behind-")]) == 10, 20, "the others")

    def span(prefix: str) -> float:
        times = sorted(a.at for a in target.arrivals if a.task.startswith(prefix))
        return times[-1] - times[0]

    assert span("unhindered-") < 1.0
    assert span("behind-") > 2.0


def test_the_enqueuer_hands_a_step_over_once(standin: Standin, target: Target) -> None:
    """Planter's enqueuer through the REST transport: a repeated hand-over of the same (task, step,
    generation) is answered 409 ALREADY_EXISTS, which over REST api_core raises as Conflict (not
    AlreadyExists, its gRPC mapping); the enqueuer treats it as done. The queue is the one the
    local stack creates (dev/local_queues.py)."""
    from common.queue import CloudTasksEnqueuer, task_name
    from dev.local_queues import LOCAL_QUEUE_CONFIG, ensure_queues

    settings = Settings(
        tasks_project="standin-test",
        tasks_queue="planter-steps",
        tasks_endpoint=f"http://127.0.0.1:{standin.port}",
        step_url=target.url,
        step_signing_secret="s" * 40,
    )
    (name,) = ensure_queues(settings, ["planter-steps"])
    queue = standin.client.get_queue(name=name)
    assert queue.rate_limits.max_concurrent_dispatches == LOCAL_QUEUE_CONFIG["rate_limits"]["max_concurrent_dispatches"]
    assert queue.retry_config.max_attempts == LOCAL_QUEUE_CONFIG["retry_config"]["max_attempts"]

    enqueuer = CloudTasksEnqueuer(settings)
    task_id = "0b6c3f5e-8a1d-4c1e-9d7e-2f0a1b2c3d4e"
    enqueuer.enqueue_step(task_id, "creating_org", 0)
    enqueuer.enqueue_step(task_id, "creating_org", 0)  # no exception: already there
    short = task_name(task_id, "creating_org", 0)
    wait_until(lambda: target.arrivals_of(short), 10, "the step's delivery")
    time.sleep(0.5)
    (arrival,) = target.arrivals_of(short)
    assert arrival.headers["X-CloudTasks-QueueName"] == "planter-steps"
    assert b'"step":"creating_org"' in arrival.body
