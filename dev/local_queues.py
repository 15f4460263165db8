"""The local stack's Cloud Tasks queue configuration, in one place (docs/DESIGN.md explains it).

Production's queue (deploy/queues.sh) allows 8 concurrent dispatches (pipeline_step: 2
instances x concurrency 4) at 20 a second, and retries a failed delivery 10 times, 10 s to
600 s apart. Locally the concurrency and rate are production's, so a stall shows up here as it
would there; the backoff is scaled down (1 s to 10 s) so a failing step retries within a
test's patience. The queue is created or updated through the real client at start-up, like
deploy/queues.sh does in the build.
"""

from __future__ import annotations

from typing import Any

from common.config import Settings
from common.queue import tasks_client

LOCAL_QUEUE_CONFIG: dict[str, Any] = {
    "rate_limits": {"max_dispatches_per_second": 20, "max_concurrent_dispatches": 8},
    "retry_config": {
        "max_attempts": 10,
        "max_retry_duration": {"seconds": 0},  # no age limit: the attempts alone decide
        "min_backoff": {"seconds": 1},
        "max_backoff": {"seconds": 10},
        "max_doublings": 5,
    },
}
# Each task priority's share of the capacity, as deploy/priority_queues.sh gives production's: the
# high queue may use all of it, normal half, low a quarter, at lower rates (docs/DEPLOY.md, "Priorities").
PRIORITY_RATE_LIMITS: dict[str, dict[str, int]] = {
    "high": {"max_dispatches_per_second": 20, "max_concurrent_dispatches": 8},
    "normal": {"max_dispatches_per_second": 10, "max_concurrent_dispatches": 4},
    "low": {"max_dispatches_per_second": 2, "max_concurrent_dispatches": 2},
}


def priority_queue_config(priority: str) -> dict[str, Any]:
    """The local configuration of the queue of ``priority``: its rate limits, the shared retries."""
    return {**LOCAL_QUEUE_CONFIG, "rate_limits": PRIORITY_RATE_LIMITS[priority]}


_MASK = [
    "rate_limits.max_dispatches_per_second",
    "rate_limits.max_concurrent_dispatches",
    "retry_config.max_attempts",
    "retry_config.max_retry_duration",
    "retry_config.min_backoff",
    "retry_config.max_backoff",
    "retry_config.max_doublings",
]


def ensure_queues(settings: Settings, queue_ids: list[str], config: dict[str, Any] | None = None) -> list[str]:
    """Create or update each queue to ``config`` (UpdateQueue creates a missing queue); return their names."""
    client = tasks_client(settings)
    parent = f"projects/{settings.tasks_project}/locations/{settings.tasks_location}"
    names = []
    for queue_id in queue_ids:
        queue = {"name": f"{parent}/queues/{queue_id}", **(config or LOCAL_QUEUE_CONFIG)}
        client.update_queue(queue=queue, update_mask={"paths": _MASK}, timeout=10)
        names.append(queue["name"])
    return names
