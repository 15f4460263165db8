"""Queues and tasks as the stand-in keeps them, and their Cloud Tasks v2 REST (proto3 JSON) form.

The real client sends proto3 JSON (camelCase keys, enums as integers, durations as "10s",
timestamps as RFC 3339); responses use the same shapes, so the client parses them into its
own types. Snake_case keys are accepted too, as proto3 JSON parsers do.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

# google.cloud.tasks.v2.HttpMethod, by number and by name.
HTTP_METHODS = {1: "POST", 2: "GET", 3: "HEAD", 4: "PUT", 5: "DELETE", 6: "PATCH", 7: "OPTIONS"}
# Cloud Tasks' limits for HTTP targets: dispatch_deadline in [15 s, 30 min], 10 min by default.
MIN_DEADLINE, MAX_DEADLINE, DEFAULT_DEADLINE = 15.0, 1800.0, 600.0
QUEUE_NAME = re.compile(r"^projects/[^/]+/locations/[^/]+/queues/[A-Za-z0-9-]{1,100}$")
TASK_ID = re.compile(r"^[A-Za-z0-9_-]{1,500}$")


class ApiError(Exception):
    """A google.rpc.Status answer: HTTP status, canonical code name, message."""

    def __init__(self, http_status: int, status: str, message: str) -> None:
        super().__init__(message)
        self.http_status, self.status, self.message = http_status, status, message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.http_status, "message": self.message, "status": self.status}}


def get(data: dict[str, Any], camel: str, default: Any = None) -> Any:
    """A field by its proto3 JSON name or its original (snake_case) name."""
    snake = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel)
    return data.get(camel, data.get(snake, default))


def parse_duration(value: Any, default: float) -> float:
    if value in (None, ""):
        return default
    if isinstance(value, dict):  # {"seconds": .., "nanos": ..}
        return float(value.get("seconds", 0)) + float(value.get("nanos", 0)) / 1e9
    text = str(value)
    if not text.endswith("s"):
        raise ApiError(400, "INVALID_ARGUMENT", f"bad duration {text!r}")
    return float(text[:-1])


def format_duration(seconds: float) -> str:
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{seconds:.3f}s"


def parse_time(value: Any) -> float | None:
    if value in (None, ""):
        return None
    text = str(value).replace("Z", "+00:00")
    # Python parses at most microseconds: cut nanoseconds down.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError as exc:
        raise ApiError(400, "INVALID_ARGUMENT", f"bad timestamp {value!r}") from exc


def format_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class RetryConfig:
    # Cloud Tasks' defaults for a queue created without a retry configuration.
    max_attempts: int = 100
    max_retry_duration: float = 0.0
    min_backoff: float = 0.1
    max_backoff: float = 3600.0
    max_doublings: int = 16

    def backoff(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1 = first retry), per RetryConfig.max_doublings:
        start at min_backoff, double max_doublings times, then grow linearly by
        2^max_doublings x min_backoff, never beyond max_backoff."""
        step = self.min_backoff * 2.0 ** min(retry - 1, self.max_doublings)
        if retry - 1 > self.max_doublings:
            step += (retry - 1 - self.max_doublings) * self.min_backoff * 2.0**self.max_doublings
        return min(step, self.max_backoff)

    def gives_up(self, attempts: int, age: float) -> bool:
        """Stop only when both limits are met; max_attempts -1 is unlimited, max_retry_duration 0 is no age limit."""
        attempts_spent = self.max_attempts != -1 and attempts >= self.max_attempts
        age_spent = self.max_retry_duration == 0 or age >= self.max_retry_duration
        return attempts_spent and age_spent


@dataclass
class Queue:
    name: str
    max_dispatches_per_second: float = 500.0
    max_concurrent_dispatches: int = 1000
    retry: RetryConfig = field(default_factory=RetryConfig)
    state: str = "RUNNING"

    @property
    def short_name(self) -> str:
        return self.name.rsplit("/", 1)[1]

    @property
    def max_burst_size(self) -> int:
        # Output only in Cloud Tasks (derived from the rate); a bucket of one second's worth here.
        return max(1, math.ceil(self.max_dispatches_per_second))

    def apply(self, data: dict[str, Any], mask: set[str] | None = None) -> None:
        """Set the fields present in REST ``data`` (all of them, or those named in an update mask)."""

        def wanted(path: str) -> bool:
            return mask is None or path in mask or path.split(".", maxsplit=1)[0] in mask

        rate = get(data, "rateLimits") or {}
        retry = get(data, "retryConfig") or {}
        if wanted("rate_limits.max_dispatches_per_second") and get(rate, "maxDispatchesPerSecond") is not None:
            self.max_dispatches_per_second = float(get(rate, "maxDispatchesPerSecond"))
        if wanted("rate_limits.max_concurrent_dispatches") and get(rate, "maxConcurrentDispatches") is not None:
            self.max_concurrent_dispatches = int(get(rate, "maxConcurrentDispatches"))
        r = self.retry
        if wanted("retry_config.max_attempts") and get(retry, "maxAttempts") is not None:
            r.max_attempts = int(get(retry, "maxAttempts"))
        if wanted("retry_config.max_doublings") and get(retry, "maxDoublings") is not None:
            r.max_doublings = int(get(retry, "maxDoublings"))
        for key, attr in (("minBackoff", "min_backoff"), ("maxBackoff", "max_backoff")):
            if wanted(f"retry_config.{attr}") and get(retry, key) is not None:
                setattr(r, attr, parse_duration(get(retry, key), getattr(r, attr)))
        if wanted("retry_config.max_retry_duration") and get(retry, "maxRetryDuration") is not None:
            r.max_retry_duration = parse_duration(get(retry, "maxRetryDuration"), 0.0)
        if self.max_dispatches_per_second <= 0 or self.max_concurrent_dispatches <= 0 or r.max_attempts < -1:
            raise ApiError(400, "INVALID_ARGUMENT", "rate limits must be positive and max_attempts >= -1")

    def to_json(self) -> dict[str, Any]:
        r = self.retry
        return {
            "name": self.name,
            "rateLimits": {
                "maxDispatchesPerSecond": self.max_dispatches_per_second,
                "maxBurstSize": self.max_burst_size,
                "maxConcurrentDispatches": self.max_concurrent_dispatches,
            },
            "retryConfig": {
                "maxAttempts": r.max_attempts,
                "maxRetryDuration": format_duration(r.max_retry_duration),
                "minBackoff": format_duration(r.min_backoff),
                "maxBackoff": format_duration(r.max_backoff),
                "maxDoublings": r.max_doublings,
            },
            "state": self.state,
        }

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Queue:
        return cls(**{**record, "retry": RetryConfig(**record["retry"])})


@dataclass
class Task:
    name: str
    url: str
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""  # base64, as it travels
    schedule_time: float = 0.0
    create_time: float = 0.0
    dispatch_deadline: float = DEFAULT_DEADLINE
    dispatch_count: int = 0
    response_count: int = 0
    execution_count: int = 0  # responses that were not 5xx (X-CloudTasks-TaskExecutionCount)
    first_attempt_time: float | None = None
    last_status: int | None = None  # HTTP status of the last attempt; None: no answer yet

    @property
    def queue_name(self) -> str:
        return self.name.rsplit("/tasks/", 1)[0]

    @property
    def short_name(self) -> str:
        return self.name.rsplit("/", 1)[1]

    @classmethod
    def from_json(cls, queue: str, data: dict[str, Any], task_id: str, now: float) -> Task:
        request = get(data, "httpRequest")
        if not request or not get(request, "url"):
            raise ApiError(400, "INVALID_ARGUMENT", "only HTTP tasks with a url are supported")
        method = get(request, "httpMethod", 1)
        deadline = parse_duration(get(data, "dispatchDeadline"), DEFAULT_DEADLINE)
        if not MIN_DEADLINE <= deadline <= MAX_DEADLINE:
            raise ApiError(400, "INVALID_ARGUMENT", "dispatch_deadline must be between 15 s and 30 min")
        scheduled = parse_time(get(data, "scheduleTime"))
        return cls(
            name=f"{queue}/tasks/{task_id}",
            url=str(get(request, "url")),
            method=HTTP_METHODS.get(method, str(method)) if isinstance(method, int) else str(method),
            headers=dict(get(request, "headers") or {}),
            body=str(get(request, "body") or ""),
            # A schedule_time in the past (or none) means now.
            schedule_time=max(scheduled or now, now),
            create_time=now,
            dispatch_deadline=deadline,
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "httpRequest": {"url": self.url, "httpMethod": self.method, "headers": self.headers, "body": self.body},
            "scheduleTime": format_time(self.schedule_time),
            "createTime": format_time(math.floor(self.create_time)),  # truncated to the second, as documented
            "dispatchDeadline": format_duration(self.dispatch_deadline),
            "dispatchCount": self.dispatch_count,
            "responseCount": self.response_count,
            "view": "FULL",
        }
        return data

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Task:
        return cls(**record)
