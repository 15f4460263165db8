"""The scheduler tick: finds steps that stalled and sets them going again, or fails them.

Two ways a step stalls: its run died (no heartbeat within the step's timeout) or it was due and
never delivered (the process died between commit and enqueue, or the queue lost it). Both are
re-enqueued under a new generation, so the new Cloud Tasks name is not a duplicate of the old.
"""

from __future__ import annotations

import sqlalchemy as sa

from common import pipeline
from common.config import get_settings
from common.db import run_in_transaction
from common.log import get_logger
from common.models import TickResult
from common.queries import steps as q
from common.queue import hand_over
from common.services.steps import fail_task

logger = get_logger("planter.reaper")
BATCH = 500


def tick() -> TickResult:
    """Re-enqueue or fail every stalled step found (in batches), then enqueue after commit."""
    grace = get_settings().redelivery_grace_seconds
    to_enqueue: list[tuple[str, str, int, str]] = []
    failed = 0

    def work(conn: sa.Connection) -> int:
        nonlocal failed
        rows = q.stalled(conn, grace, BATCH)
        finished: set[object] = set()
        for row in rows:
            if row["task_id"] in finished:
                continue  # failed by an earlier row of this tick
            step = pipeline.BY_NAME[row["name"]]
            died = row["status"] == "running"
            if died and row["attempts"] >= row["max_attempts"]:
                fail_task(
                    conn, row["task_id"], step, "the step stopped responding and has no attempts left", row["user_id"]
                )
                failed += 1
                finished.add(row["task_id"])
                continue
            error = "the step stopped responding; retrying" if died else None
            generation = q.retry_later(conn, row["task_id"], step.name, error, 0, bump=True)
            to_enqueue.append((str(row["task_id"]), step.name, generation, row["priority"]))
        return len(rows)

    run_in_transaction(work)
    for task_id, step_name, generation, priority in to_enqueue:
        hand_over(task_id, step_name, generation, priority)
    if to_enqueue or failed:
        logger.info("reaper tick", extra={"fields": {"reenqueued": len(to_enqueue), "failed": failed}})
    return TickResult(reenqueued=len(to_enqueue), failed=failed)
