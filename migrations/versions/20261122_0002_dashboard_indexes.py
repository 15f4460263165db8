"""dashboard indexes: a user's tasks by last update (the AI-operations time series)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 14:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_tasks_user_updated",
        "tasks",
        ["user_id", "updated_at"],
        unique=False,
        postgresql_include=["id"],
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_user_updated", table_name="tasks", postgresql_include=["id"])
