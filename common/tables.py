"""SQLAlchemy Core tables: the one description of the schema, and Alembic's target metadata."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from common.plans import FREE_TIER, TIER_LIMITS

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TZ = sa.DateTime(timezone=True)
NOW = sa.text("now()")

TIERS = tuple(TIER_LIMITS)
MODES = ("saas", "user")
STEP_STATUSES = ("pending", "running", "waiting", "succeeded", "failed", "skipped")
TERMINAL_STATUSES = ("completed", "failed", "cancelled")
# Kept in step with common.pipeline.STEP_NAMES; a unit test checks the two agree.
TASK_STATUSES = (
    "initializing",
    "creating_org",
    "forking_template",
    "customizing_project",
    "creating_gcp_project",
    "deploying",
    "creating_issues",
    # The other task types' steps (common.pipeline.TYPE_STEPS), in the same order.
    "building_release",
    "redeploying",
    "generating_issues",
    "deleting_gcp_project",
    "archiving_repository",
    *TERMINAL_STATUSES,
)
PRIORITIES = ("low", "normal", "high")  # common.pipeline.PRIORITIES; a unit test checks the two agree
JOB_STATUSES = ("active", "paused", "failed")
# A job run is 'running' until its task ends; 'refused' when the quota refused to create it.
JOB_RUN_OUTCOMES = ("running", "completed", "failed", "cancelled", "refused")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


users = sa.Table(
    "users",
    metadata,
    sa.Column("id", pg.UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")),
    sa.Column("email", sa.Text, nullable=False, unique=True),
    sa.Column("subject", sa.Text),
    sa.Column("created_at", TZ, nullable=False, server_default=NOW),
    sa.CheckConstraint("email = lower(email) AND length(email) BETWEEN 3 AND 320", name="email_normalised"),
    # Display name (PATCH /api/v1/me); migration 0003_i18.
    sa.Column("name", sa.Text),
    sa.CheckConstraint("length(name) BETWEEN 1 AND 200", name="name_length"),
)

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("user_id", pg.UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("tier", sa.Text, nullable=False, server_default=FREE_TIER),
    # -1 means unlimited (enterprise), as in the original system.
    sa.Column("monthly_operations_limit", sa.Integer, nullable=False, server_default=str(TIER_LIMITS[FREE_TIER])),
    sa.Column("created_at", TZ, nullable=False, server_default=NOW),
    sa.Column("updated_at", TZ, nullable=False, server_default=NOW),
    sa.CheckConstraint(_in("tier", TIERS), name="tier_known"),
    sa.CheckConstraint("monthly_operations_limit >= -1", name="limit_valid"),
)

usage = sa.Table(
    "usage",
    metadata,
    sa.Column("user_id", pg.UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("period_start", sa.Date, primary_key=True),
    sa.Column("ai_operations_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("projects_created", sa.Integer, nullable=False, server_default="0"),
    sa.Column("issues_generated", sa.Integer, nullable=False, server_default="0"),
    sa.Column("prs_created", sa.Integer, nullable=False, server_default="0"),
    sa.Column("api_calls", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", TZ, nullable=False, server_default=NOW),
    sa.CheckConstraint(
        "ai_operations_count >= 0 AND projects_created >= 0 AND issues_generated >= 0"
        " AND prs_created >= 0 AND api_calls >= 0",
        name="counts_non_negative",
    ),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("user_id", pg.UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("user_email", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False, server_default="create_project"),
    sa.Column("status", sa.Text, nullable=False, server_default="initializing"),
    sa.Column("project_name", sa.Text, nullable=False),
    sa.Column("project_description", sa.Text, nullable=False, server_default=""),
    sa.Column("mode", sa.Text, nullable=False, server_default="saas"),
    sa.Column("message", sa.Text, nullable=False, server_default=""),
    sa.Column("progress_percent", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("current_step", sa.Text),
    sa.Column("project_id", sa.Text),
    sa.Column("org_url", sa.Text),
    sa.Column("repo_url", sa.Text),
    sa.Column("deployment_url", sa.Text),
    sa.Column("gcp_project_id", sa.Text),
    sa.Column("error_message", sa.Text),
    sa.Column("payload", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("result", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("extra", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", TZ, nullable=False, server_default=NOW),
    sa.Column("updated_at", TZ, nullable=False, server_default=NOW),
    sa.Column("completed_at", TZ),
    sa.Column("failed_at", TZ),
    sa.Column("cancelled_at", TZ),
    sa.Column("priority", sa.Text, nullable=False, server_default="normal"),
    sa.CheckConstraint(_in("status", TASK_STATUSES), name="status_known"),
    sa.CheckConstraint(_in("priority", PRIORITIES), name="priority_known"),
    sa.CheckConstraint(_in("mode", MODES), name="mode_known"),
    sa.CheckConstraint("progress_percent BETWEEN 0 AND 100", name="progress_range"),
    sa.CheckConstraint("length(project_name) BETWEEN 1 AND 100", name="name_length"),
    sa.CheckConstraint("(status = 'completed') = (completed_at IS NOT NULL)", name="completed_at_iff_completed"),
    sa.CheckConstraint("(status = 'failed') = (failed_at IS NOT NULL)", name="failed_at_iff_failed"),
    sa.CheckConstraint("(status = 'cancelled') = (cancelled_at IS NOT NULL)", name="cancelled_at_iff_cancelled"),
    # Listing newest first per user, keyset-paginated.
    sa.Index("ix_tasks_user_created", "user_id", sa.text("created_at DESC"), sa.text("id DESC")),
    # Dashboard: a user's active tasks; small because finished tasks leave it.
    sa.Index(
        "ix_tasks_user_active",
        "user_id",
        "created_at",
        postgresql_where=sa.text("status NOT IN ('completed', 'failed', 'cancelled')"),
    ),
    # Dashboard: finished tasks per user by the time they finished.
    sa.Index(
        "ix_tasks_user_completed",
        "user_id",
        "completed_at",
        postgresql_where=sa.text("completed_at IS NOT NULL"),
        postgresql_include=["created_at"],
    ),
    sa.Index(
        "ix_tasks_user_failed",
        "user_id",
        "failed_at",
        postgresql_where=sa.text("failed_at IS NOT NULL"),
    ),
    # Dashboard: a user's tasks touched since a time. Every step that finishes bumps its task's
    # updated_at in the same transaction, so this bounds the AI-operations series (docs/DASHBOARD.md).
    sa.Index("ix_tasks_user_updated", "user_id", "updated_at", postgresql_include=["id"]),
)

task_steps = sa.Table(
    "task_steps",
    metadata,
    sa.Column("task_id", pg.UUID(as_uuid=True), sa.ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("position", sa.SmallInteger, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    # Bumped each time the step is handed to the queue anew, so that task names stay unique.
    sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
    # When the step should next be delivered; the reaper re-enqueues what is overdue.
    sa.Column("due_at", TZ),
    sa.Column("claim_id", pg.UUID(as_uuid=True)),
    sa.Column("started_at", TZ),
    sa.Column("finished_at", TZ),
    sa.Column("heartbeat_at", TZ),
    sa.Column("lease_expires_at", TZ),
    sa.Column("error", sa.Text),
    sa.Column("result", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    # A waiting step: the provider's hand-off state (for check) and the outcome a worker reported.
    sa.Column("handoff", pg.JSONB),
    sa.CheckConstraint(_in("status", STEP_STATUSES), name="status_known"),
    sa.CheckConstraint("attempts >= 0 AND max_attempts >= 1", name="attempts_valid"),
    sa.UniqueConstraint("task_id", "position"),
    # The reaper's two scans: overdue pending steps and expired leases.
    sa.Index("ix_task_steps_due", "due_at", postgresql_where=sa.text("status = 'pending' AND due_at IS NOT NULL")),
    sa.Index("ix_task_steps_lease", "lease_expires_at", postgresql_where=sa.text("status = 'running'")),
    # Waiting steps whose scheduled check never arrived, or whose outside work outlived its timeout.
    sa.Index("ix_task_steps_waiting", "due_at", postgresql_where=sa.text("status = 'waiting'")),
    # Dashboard: recent durations per step name for completion estimates.
    sa.Index(
        "ix_task_steps_name_finished",
        "name",
        sa.text("finished_at DESC"),
        postgresql_where=sa.text("status = 'succeeded'"),
        postgresql_include=["started_at"],
    ),
)

task_progress = sa.Table(
    "task_progress",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("task_id", pg.UUID(as_uuid=True), sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    # Set by steps and by workers that send one; a repeated id for the same task stores one row.
    sa.Column("update_id", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False, server_default=""),
    sa.Column("progress_percent", sa.SmallInteger, nullable=False),
    sa.Column("org_url", sa.Text),
    sa.Column("repo_url", sa.Text),
    sa.Column("deployment_url", sa.Text),
    sa.Column("gcp_project_id", sa.Text),
    sa.Column("timestamp", TZ, nullable=False, server_default=NOW),
    sa.Column("extra", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.CheckConstraint("progress_percent BETWEEN 0 AND 100", name="progress_range"),
    sa.CheckConstraint("length(update_id) BETWEEN 1 AND 200", name="update_id_length"),
    sa.UniqueConstraint("task_id", "update_id"),
    sa.Index("ix_task_progress_task_id", "task_id", "id"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("user_id", pg.UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("task_id", pg.UUID(as_uuid=True), sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", TZ, nullable=False, server_default=NOW),
    sa.Column("expires_at", TZ, nullable=False),
    sa.CheckConstraint("length(key) BETWEEN 1 AND 255", name="key_length"),
    sa.Index("ix_idempotency_keys_expires_at", "expires_at"),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("user_id", pg.UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("schedule", sa.Text, nullable=False),
    sa.Column("timezone", sa.Text, nullable=False, server_default="UTC"),
    sa.Column("status", sa.Text, nullable=False, server_default="active"),
    sa.Column("task_type", sa.Text, nullable=False),
    sa.Column("task_payload", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("task_priority", sa.Text, nullable=False, server_default="normal"),
    # The next scheduled time (UTC); NULL while paused or failed.
    sa.Column("next_run", TZ),
    sa.Column("last_run", TZ),
    sa.Column("last_task_id", pg.UUID(as_uuid=True), sa.ForeignKey("tasks.id", ondelete="SET NULL")),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", TZ, nullable=False, server_default=NOW),
    sa.Column("updated_at", TZ, nullable=False, server_default=NOW),
    sa.CheckConstraint(_in("status", JOB_STATUSES), name="status_known"),
    sa.CheckConstraint(_in("task_priority", PRIORITIES), name="priority_known"),
    sa.CheckConstraint("length(name) BETWEEN 1 AND 100", name="name_length"),
    sa.CheckConstraint("consecutive_failures >= 0", name="failures_non_negative"),
    sa.Index("ix_jobs_user_created", "user_id", sa.text("created_at DESC"), sa.text("id DESC")),
    # The scheduler tick's scan: active jobs by their next time.
    sa.Index("ix_jobs_due", "next_run", postgresql_where=sa.text("status = 'active'")),
)

# One row per (job, scheduled time): the primary key is what makes a job fire at most once per
# scheduled time, whatever the number of ticks, duplicates or instances.
job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("job_id", pg.UUID(as_uuid=True), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("scheduled_for", TZ, primary_key=True),
    sa.Column("task_id", pg.UUID(as_uuid=True), sa.ForeignKey("tasks.id", ondelete="CASCADE")),
    sa.Column("outcome", sa.Text, nullable=False, server_default="running"),
    sa.Column("error", sa.Text),
    sa.Column("created_at", TZ, nullable=False, server_default=NOW),
    sa.CheckConstraint(_in("outcome", JOB_RUN_OUTCOMES), name="outcome_known"),
    # The tick settles runs whose task ended: a small index of the ones still running.
    sa.Index("ix_job_runs_running", "task_id", postgresql_where=sa.text("outcome = 'running'")),
)

# --- The assistant (issue 17) -------------------------------------------------------------------
# Step analytics: a user's tasks of one type in a time window, index-only (no heap visit per task).
sa.Index("ix_tasks_user_type_created", tasks.c.user_id, tasks.c.type, tasks.c.created_at, postgresql_include=["id"])

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("user_id", pg.UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("message_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", TZ, nullable=False, server_default=NOW),
    sa.Column("updated_at", TZ, nullable=False, server_default=NOW),
    sa.CheckConstraint("length(title) BETWEEN 1 AND 100", name="title_length"),
    sa.CheckConstraint("message_count >= 0", name="count_non_negative"),
    # "My conversations, newest first" (most recently active).
    sa.Index("ix_conversations_user_updated", "user_id", sa.text("updated_at DESC"), sa.text("id DESC")),
)

chat_messages = sa.Table(
    "chat_messages",
    metadata,
    sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
    # Insertion order: a user's message and its reply may share a timestamp.
    sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False),
    sa.Column(
        "conversation_id", pg.UUID(as_uuid=True), sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("user_id", pg.UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    # On a user's message sent with Idempotency-Key: the retry finds it (and its reply) again.
    sa.Column("idempotency_key", sa.Text),
    sa.Column("fingerprint", sa.Text),
    # On an assistant's message: the user's message it answers (at most one reply each).
    sa.Column("reply_to", pg.UUID(as_uuid=True)),
    sa.Column("created_at", TZ, nullable=False, server_default=NOW),
    sa.CheckConstraint("role IN ('user', 'assistant', 'system')", name="role_known"),
    sa.CheckConstraint("length(idempotency_key) BETWEEN 1 AND 255", name="key_length"),
    sa.UniqueConstraint("reply_to"),
    # "This conversation, oldest first".
    sa.Index("ix_chat_messages_conversation_seq", "conversation_id", "seq"),
    sa.Index(
        "ix_chat_messages_user_key",
        "user_id",
        "idempotency_key",
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    ),
)

dashboard_insights = sa.Table(
    "dashboard_insights",
    metadata,
    sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("user_id", pg.UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("position", sa.SmallInteger, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("data", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("recommendations", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    # One set per user, replaced whole: every row of the set carries the same generated_at.
    sa.Column("generated_at", TZ, nullable=False),
    sa.CheckConstraint("confidence BETWEEN 0 AND 1", name="confidence_range"),
    sa.UniqueConstraint("user_id", "position"),
)
