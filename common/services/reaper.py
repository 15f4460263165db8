"""The scheduler tick: finds steps that stalled and sets them going again, or fails them.

Three ways a step stalls: its run died (no heartbeat within the step's timeout), a waiting step's
outside work outlived its timeout, or a delivery was due and never arrived (the process died
between commit and enqueue, the queue lost it, or a waiting step's scheduled check went missing).
Each is re-enqueued under a new generation, so the new Cloud Tasks name is not a duplicate of the
old; a waiting step whose check went missing stays waiting, and the new delivery is its check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common import pipeline
from common.log import get_logger
from common.models import TickResult
from common.queries import steps as q
from common.queue import hand_over
from common.services.step_records import NO_ATTEMPTS_LEFT, failure_message, log_task_failed

if TYPE_CHECKING:
    from common.runtime import Runtime

logger = get_logger("planter.reaper")
BATCH = 500


def tick(rt: Runtime) -> TickResult:
    """Re-enqueue or fail every stalled step found (one call locks and moves them), then enqueue."""
    rows = rt.db.statement(
        lambda conn: q.reap(
            conn,
            rt.settings.redelivery_grace_seconds,
            BATCH,
            fail_messages={step.name: failure_message(step) for step in pipeline.ALL_STEPS},
            no_attempts_error=NO_ATTEMPTS_LEFT,
            retry_error="the step stopped responding; retrying",
        )
    )
    to_enqueue: list[tuple[str, str, int, str]] = []
    failed = 0
    for row in rows:
        fields = {
            "task_id": str(row["task_id"]),
            "step": row["name"],
            "status": row["status"],
            "why": ("silent" if row["status"] == "running" else "outside work timed out")
            if row["timed_out"]
            else "its delivery never arrived",
            "waited_seconds": round(float(row["waited_seconds"] or 0), 1),
        }
        if row["action"] == "failed":
            log_task_failed(row["task_id"], row["name"], NO_ATTEMPTS_LEFT)
            logger.warning("reaper fails step", extra={"fields": fields})
            failed += 1
            continue
        logger.info("reaper re-sends step", extra={"fields": {**fields, "generation": row["generation"]}})
        to_enqueue.append((str(row["task_id"]), row["name"], row["generation"], row["priority"]))
    for task_id, step_name, generation, priority in to_enqueue:
        hand_over(rt.enqueuer, task_id, step_name, generation, priority)
    if to_enqueue or failed:
        logger.info("reaper tick", extra={"fields": {"reenqueued": len(to_enqueue), "failed": failed}})
    return TickResult(reenqueued=len(to_enqueue), failed=failed)
