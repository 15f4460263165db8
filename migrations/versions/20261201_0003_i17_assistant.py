"""assistant: conversations and their messages, dashboard insights, the step-analytics index

Revision ID: 0003_i17
Revises: 0003_i16
Create Date: 2026-12-01 04:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0003_i17"
down_revision = "0003_i16"  # re-chained after main's 0003_i18, 0003_i12 and 0003_i16 when main was merged in
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("user_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("message_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", TZ, nullable=False, server_default=NOW),
        sa.Column("updated_at", TZ, nullable=False, server_default=NOW),
        sa.CheckConstraint("length(title) BETWEEN 1 AND 100", name=op.f("ck_conversations_title_length")),
        sa.CheckConstraint("message_count >= 0", name=op.f("ck_conversations_count_non_negative")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_conversations_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
    )
    op.create_index(
        "ix_conversations_user_updated",
        "conversations",
        ["user_id", sa.text("updated_at DESC"), sa.text("id DESC")],
        unique=False,
    )
    op.create_table(
        "chat_messages",
        sa.Column("id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("conversation_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("user_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("idempotency_key", sa.Text),
        sa.Column("fingerprint", sa.Text),
        sa.Column("reply_to", pg.UUID(as_uuid=True)),
        sa.Column("created_at", TZ, nullable=False, server_default=NOW),
        sa.CheckConstraint("role IN ('user', 'assistant', 'system')", name=op.f("ck_chat_messages_role_known")),
        sa.CheckConstraint("length(idempotency_key) BETWEEN 1 AND 255", name=op.f("ck_chat_messages_key_length")),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_chat_messages_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_chat_messages_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
        sa.UniqueConstraint("reply_to", name=op.f("uq_chat_messages_reply_to")),
    )
    op.create_index("ix_chat_messages_conversation_seq", "chat_messages", ["conversation_id", "seq"], unique=False)
    op.create_index(
        "ix_chat_messages_user_key",
        "chat_messages",
        ["user_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_table(
        "dashboard_insights",
        sa.Column("id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("user_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("position", sa.SmallInteger, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("data", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("recommendations", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("generated_at", TZ, nullable=False),
        sa.CheckConstraint("confidence BETWEEN 0 AND 1", name=op.f("ck_dashboard_insights_confidence_range")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_dashboard_insights_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_insights")),
        sa.UniqueConstraint("user_id", "position", name=op.f("uq_dashboard_insights_user_id_position")),
    )
    # Step analytics: a user's tasks of one type in a time window, without visiting the heap.
    op.create_index(
        "ix_tasks_user_type_created",
        "tasks",
        ["user_id", "type", "created_at"],
        unique=False,
        postgresql_include=["id"],
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_user_type_created", table_name="tasks", postgresql_include=["id"])
    op.drop_table("dashboard_insights")
    op.drop_index("ix_chat_messages_user_key", table_name="chat_messages")
    op.drop_index("ix_chat_messages_conversation_seq", table_name="chat_messages")
    op.drop_table("chat_messages")
    op.drop_index("ix_conversations_user_updated", table_name="conversations")
    op.drop_table("conversations")
