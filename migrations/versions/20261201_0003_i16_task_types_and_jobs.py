"""task types and scheduled jobs: task priority, the other types' phases, jobs and their runs

Revision ID: 0003_i16
Revises: 0003_i12
Create Date: 2026-12-01 04:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_i16"
down_revision = "0003_i12"  # re-chained after main's 0003_i18 and 0003_i12 (was "0002")
branch_labels = None
depends_on = None

_OLD_STATUSES = (
    "initializing",
    "creating_org",
    "forking_template",
    "customizing_project",
    "creating_gcp_project",
    "deploying",
    "creating_issues",
    "completed",
    "failed",
    "cancelled",
)
_NEW_STEPS = ("building_release", "redeploying", "generating_issues", "deleting_gcp_project", "archiving_repository")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _status_check(statuses: tuple[str, ...]) -> None:
    op.drop_constraint(op.f("ck_tasks_status_known"), "tasks", type_="check")
    op.create_check_constraint(op.f("ck_tasks_status_known"), "tasks", _in("status", statuses))


def upgrade() -> None:
    _status_check((*_OLD_STATUSES[:7], *_NEW_STEPS, *_OLD_STATUSES[7:]))
    op.add_column("tasks", sa.Column("priority", sa.Text(), server_default="normal", nullable=False))
    op.create_check_constraint(op.f("ck_tasks_priority_known"), "tasks", "priority IN ('low', 'normal', 'high')")
    op.create_table(
        "jobs",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("schedule", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), server_default="UTC", nullable=False),
        sa.Column("status", sa.Text(), server_default="active", nullable=False),
        sa.Column("task_type", sa.Text(), nullable=False),
        sa.Column("task_payload", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("task_priority", sa.Text(), server_default="normal", nullable=False),
        sa.Column("next_run", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_task_id", sa.UUID(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('active', 'paused', 'failed')", name=op.f("ck_jobs_status_known")),
        sa.CheckConstraint("task_priority IN ('low', 'normal', 'high')", name=op.f("ck_jobs_priority_known")),
        sa.CheckConstraint("length(name) BETWEEN 1 AND 100", name=op.f("ck_jobs_name_length")),
        sa.CheckConstraint("consecutive_failures >= 0", name=op.f("ck_jobs_failures_non_negative")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_jobs_user_id_users"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["last_task_id"], ["tasks.id"], name=op.f("fk_jobs_last_task_id_tasks"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(
        "ix_jobs_user_created", "jobs", ["user_id", sa.text("created_at DESC"), sa.text("id DESC")], unique=False
    )
    op.create_index("ix_jobs_due", "jobs", ["next_run"], unique=False, postgresql_where=sa.text("status = 'active'"))
    op.create_table(
        "job_runs",
        sa.Column("job_id", sa.UUID(), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
        sa.Column("task_id", sa.UUID(), nullable=True),
        sa.Column("outcome", sa.Text(), server_default="running", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('running', 'completed', 'failed', 'cancelled', 'refused')",
            name=op.f("ck_job_runs_outcome_known"),
        ),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_job_runs_job_id_jobs"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_job_runs_task_id_tasks"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "scheduled_for", name=op.f("pk_job_runs")),
    )
    op.create_index(
        "ix_job_runs_running", "job_runs", ["task_id"], unique=False, postgresql_where=sa.text("outcome = 'running'")
    )


def downgrade() -> None:
    op.drop_index("ix_job_runs_running", table_name="job_runs", postgresql_where=sa.text("outcome = 'running'"))
    op.drop_table("job_runs")
    op.drop_index("ix_jobs_due", table_name="jobs", postgresql_where=sa.text("status = 'active'"))
    op.drop_index("ix_jobs_user_created", table_name="jobs")
    op.drop_table("jobs")
    op.drop_constraint(op.f("ck_tasks_priority_known"), "tasks", type_="check")
    op.drop_column("tasks", "priority")
    # The older status check knows only create_project's phases: tasks of the other types go.
    op.execute("DELETE FROM tasks WHERE type <> 'create_project'")
    _status_check(_OLD_STATUSES)
