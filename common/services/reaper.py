"""The scheduler tick: finds steps that stalled and sets them going again, or fails them.

Three ways a step stalls: its run died (no heartbeat within the step's timeout), a waiting step's
outside work outlived its timeout, or a delivery was due and never arrived (the process died
between commit and enqueue, the queue lost it, or a waiting step's scheduled check went missing).
Each is re-enqueued under a new generation, so the new Cloud Tasks name is not a duplicate of the
old; a waiting step whose check went missing stays waiting, and the new delivery is its check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from common import pipeline
from common.log import get_logger
from common.models import TickResult
from common.queries import steps as q
from common.queue import hand_over
from common.services.step_records import fail_task

if TYPE_CHECKING:
    from common.runtime import Runtime

logger = get_logger("planter.reaper")
BATCH = 500


def tick(rt: Runtime) -> TickResult:
    """Re-enqueue or fail every stalled step found (in batches), then enqueue after commit."""
    grace = rt.settings.redelivery_grace_seconds
    to_enqueue: list[tuple[str, str, int, str]] = []
    failed = 0

    def work(conn: sa.Connection) -> int:
        nonlocal failed
        to_enqueue.clear()  # a retried transaction starts over
        failed = 0
        rows = q.stalled(conn, grace, BATCH)
        finished: set[object] = set()
        for row in rows:
            if row["task_id"] in finished:
                continue  # failed by an earlier row of this tick
            step = pipeline.BY_NAME[row["name"]]
            died = bool(row["timed_out"])
            fields = {
                "task_id": str(row["task_id"]),
                "step": step.name,
                "status": row["status"],
                "why": ("silent" if row["status"] == "running" else "outside work timed out")
                if died
                else "its delivery never arrived",
                "waited_seconds": round(float(row["waited_seconds"] or 0), 1),
            }
            if died and row["attempts"] >= row["max_attempts"]:
                fail_task(
                    conn, row["task_id"], step, "the step stopped responding and has no attempts left", row["user_id"]
                )
                logger.warning("reaper fails step", extra={"fields": fields})
                failed += 1
                finished.add(row["task_id"])
                continue
            if row["status"] == "waiting" and not died:
                generation = q.bump_generation(conn, row["task_id"], step.name)
            else:
                error = "the step stopped responding; retrying" if died else None
                generation = q.retry_later(conn, row["task_id"], step.name, error, 0, bump=True)
            logger.info("reaper re-sends step", extra={"fields": {**fields, "generation": generation}})
            to_enqueue.append((str(row["task_id"]), step.name, generation, row["priority"]))
        return len(rows)

    rt.db.transaction(work)
    for task_id, step_name, generation, priority in to_enqueue:
        hand_over(rt.enqueuer, task_id, step_name, generation, priority)
    if to_enqueue or failed:
        logger.info("reaper tick", extra={"fields": {"reenqueued": len(to_enqueue), "failed": failed}})
    return TickResult(reenqueued=len(to_enqueue), failed=failed)
