"""waiting steps: a step handed to an outside worker waits, holding no delivery open

Revision ID: 0003_i12
Revises: 0003_i18
Create Date: 2026-12-01 04:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_i12"
down_revision = "0003_i18"  # re-chained after main's 0003_i18 at the merge of main (was "0002")
branch_labels = None
depends_on = None

_WITH_WAITING = "status IN ('pending', 'running', 'waiting', 'succeeded', 'failed', 'skipped')"
_WITHOUT_WAITING = "status IN ('pending', 'running', 'succeeded', 'failed', 'skipped')"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_task_steps_status_known"), "task_steps", type_="check")
    op.create_check_constraint(op.f("ck_task_steps_status_known"), "task_steps", _WITH_WAITING)
    # What the provider said when it handed the step off (its state for check()), and the outcome
    # a worker reported, so that a repeated outcome is recognised.
    op.add_column("task_steps", sa.Column("handoff", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.create_index(
        "ix_task_steps_waiting",
        "task_steps",
        ["due_at"],
        unique=False,
        postgresql_where=sa.text("status = 'waiting'"),
    )


def downgrade() -> None:
    op.drop_index("ix_task_steps_waiting", table_name="task_steps", postgresql_where=sa.text("status = 'waiting'"))
    op.drop_column("task_steps", "handoff")
    op.execute("UPDATE task_steps SET status = 'pending' WHERE status = 'waiting'")
    op.drop_constraint(op.f("ck_task_steps_status_known"), "task_steps", type_="check")
    op.create_check_constraint(op.f("ck_task_steps_status_known"), "task_steps", _WITHOUT_WAITING)
