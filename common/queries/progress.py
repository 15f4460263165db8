"""The progress callback as one statement: lock, decide, append once, update, read back."""

from __future__ import annotations

import uuid
from typing import Any

from common.db import Prepared
from common.queries.tasks import PHASE_ORDER_PARAM, PROGRESS_FACTS, TASK_COLUMNS

# One statement, so one round trip and no BEGIN/COMMIT: planter_record_progress (migration
# 0004_i13) locks the task row, leaves a terminal task alone, moves the phase forward only, stores
# the progress row once per update_id, and only a stored row updates the task (progress raised
# with greatest, never lowered). It answers the task after the update, or as it stands when nothing
# was stored (the stored row carries the raised figure too, so the history never goes down either);
# no row means no task, and a terminal status is the locked one (409), since only a live task is
# updated and an update never makes it terminal. Prepared (common.db.prepared): one exchange,
# and neither this statement nor the function's are planned again.
_RECORD = f"""
    SELECT t.status AS locked_status, {TASK_COLUMNS}
    FROM planter_record_progress(:task_id, :phases, :status, :percent, :update_id, :message,
                                 {", ".join(f":{fact}" for fact in PROGRESS_FACTS)}) t
    """


def record(run: Prepared, task_id: uuid.UUID, update: dict[str, Any]) -> dict[str, Any] | None:
    """Apply a worker's update; the task row with ``locked_status``, or None when there is no task."""
    rows = run(_RECORD, {"task_id": task_id, "phases": PHASE_ORDER_PARAM, **update})
    return rows[0] if rows else None
