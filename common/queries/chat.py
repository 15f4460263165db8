"""Conversations and their messages, and what the assistant is told about the caller.

Every statement is scoped by ``:user_id``: a conversation or message of another user is never
read, only "not found".
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from common.queries.tasks import iso_sql

# Conversations listed at most (newest first); older ones stay readable by id.
CONVERSATION_LIST_LIMIT = 100

_MESSAGE_COLUMNS = f"m.id, m.role, m.content, {iso_sql('m.created_at')} AS timestamp"

_OWN_CONVERSATION = sa.text(
    "SELECT id FROM conversations WHERE id = :conversation_id AND user_id = :user_id FOR UPDATE"
)

_INSERT_CONVERSATION = sa.text(
    "INSERT INTO conversations (id, user_id, title, created_at, updated_at) VALUES (:id, :user_id, :title, :at, :at)"
)

_INSERT_MESSAGE = sa.text(
    f"""
    WITH inserted AS (
        INSERT INTO chat_messages (id, conversation_id, user_id, role, content, idempotency_key, fingerprint,
                                   reply_to, created_at)
        VALUES (:id, :conversation_id, :user_id, :role, :content, :idempotency_key, :fingerprint, :reply_to, :at)
        RETURNING *
    ), counted AS (
        UPDATE conversations SET message_count = message_count + 1, updated_at = :at
        WHERE id = :conversation_id AND user_id = :user_id
    )
    SELECT {_MESSAGE_COLUMNS}, m.seq FROM inserted m
    """
)

_BY_KEY = sa.text(
    f"""
    SELECT {_MESSAGE_COLUMNS}, m.conversation_id, m.fingerprint, m.seq
    FROM chat_messages m WHERE m.user_id = :user_id AND m.idempotency_key = :key
    """
)

_REPLY_TO = sa.text(f"SELECT {_MESSAGE_COLUMNS} FROM chat_messages m WHERE m.reply_to = :message_id")

_LOCK_MESSAGE = sa.text("SELECT seq FROM chat_messages WHERE id = :message_id AND user_id = :user_id FOR UPDATE")

_HISTORY = sa.text(
    f"""
    SELECT * FROM (
        SELECT {_MESSAGE_COLUMNS}, m.seq FROM chat_messages m
        WHERE m.conversation_id = :conversation_id AND m.user_id = :user_id AND m.seq < :before_seq
        ORDER BY m.seq DESC LIMIT :limit
    ) recent ORDER BY seq
    """
)

_MESSAGES = sa.text(
    f"""
    SELECT {_MESSAGE_COLUMNS} FROM chat_messages m
    WHERE m.conversation_id = :conversation_id AND m.user_id = :user_id ORDER BY m.seq
    """
)

_CONVERSATIONS = sa.text(
    f"""
    SELECT c.id, c.title, c.message_count, {iso_sql("c.created_at")} AS created_at,
           {iso_sql("c.updated_at")} AS updated_at
    FROM conversations c WHERE c.user_id = :user_id
    ORDER BY c.updated_at DESC, c.id DESC LIMIT {CONVERSATION_LIST_LIMIT}
    """
)

_CONVERSATION_EXISTS = sa.text("SELECT 1 FROM conversations WHERE id = :conversation_id AND user_id = :user_id")


def lock_own_conversation(conn: sa.Connection, user_id: uuid.UUID, conversation_id: uuid.UUID) -> bool:
    """Lock the caller's conversation; False when it is not theirs or does not exist."""
    params = {"conversation_id": conversation_id, "user_id": user_id}
    return conn.execute(_OWN_CONVERSATION, params).first() is not None


def insert_conversation(conn: sa.Connection, user_id: uuid.UUID, title: str, at: Any) -> uuid.UUID:
    conversation_id = uuid.uuid4()
    conn.execute(_INSERT_CONVERSATION, {"id": conversation_id, "user_id": user_id, "title": title, "at": at})
    return conversation_id


def insert_message(
    conn: sa.Connection,
    *,
    conversation_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str,
    content: str,
    at: Any,
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
    reply_to: uuid.UUID | None = None,
) -> dict[str, Any]:
    """Store one message and count it on its conversation (which becomes the most recent)."""
    params = {
        "id": uuid.uuid4(),
        "conversation_id": conversation_id,
        "user_id": user_id,
        "role": role,
        "content": content,
        "idempotency_key": idempotency_key,
        "fingerprint": fingerprint,
        "reply_to": reply_to,
        "at": at,
    }
    return dict(conn.execute(_INSERT_MESSAGE, params).mappings().one())


def message_by_key(conn: sa.Connection, user_id: uuid.UUID, key: str) -> dict[str, Any] | None:
    row = conn.execute(_BY_KEY, {"user_id": user_id, "key": key}).mappings().first()
    return dict(row) if row else None


def reply_to(conn: sa.Connection, message_id: uuid.UUID) -> dict[str, Any] | None:
    row = conn.execute(_REPLY_TO, {"message_id": message_id}).mappings().first()
    return dict(row) if row else None


def lock_message(conn: sa.Connection, user_id: uuid.UUID, message_id: uuid.UUID) -> None:
    """Serialise the storing of a reply to this message (concurrent retries store one)."""
    conn.execute(_LOCK_MESSAGE, {"message_id": message_id, "user_id": user_id})


def history(
    conn: sa.Connection, user_id: uuid.UUID, conversation_id: uuid.UUID, before_seq: int, limit: int
) -> list[dict[str, Any]]:
    """The last ``limit`` messages before ``before_seq``, oldest first."""
    params = {"conversation_id": conversation_id, "user_id": user_id, "before_seq": before_seq, "limit": limit}
    return [dict(r) for r in conn.execute(_HISTORY, params).mappings()]


def messages(conn: sa.Connection, user_id: uuid.UUID, conversation_id: uuid.UUID) -> list[dict[str, Any]] | None:
    """The conversation's messages oldest first; None when it is not the caller's."""
    params = {"conversation_id": conversation_id, "user_id": user_id}
    if conn.execute(_CONVERSATION_EXISTS, params).first() is None:
        return None
    return [dict(r) for r in conn.execute(_MESSAGES, params).mappings()]


def conversations(conn: sa.Connection, user_id: uuid.UUID) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(_CONVERSATIONS, {"user_id": user_id}).mappings()]


# --- what the assistant is told ----------------------------------------------------------------
# The caller's latest tasks with the step each stopped at (the failed or current one) and its error.
_RECENT_TASKS = sa.text(
    f"""
    SELECT t.id, t.type, t.project_name, t.status, t.progress_percent, t.error_message, t.current_step,
           t.repo_url, t.deployment_url,
           {iso_sql("t.created_at")} AS created_at, {iso_sql("t.updated_at")} AS updated_at,
           s.name AS step_name, s.status AS step_status, s.attempts AS step_attempts,
           s.max_attempts AS step_max_attempts, s.error AS step_error
    FROM tasks t
    LEFT JOIN LATERAL (
        SELECT s.name, s.status, s.attempts, s.max_attempts, s.error FROM task_steps s
        WHERE s.task_id = t.id AND (s.status IN ('failed', 'running') OR s.error IS NOT NULL)
        ORDER BY (s.status = 'failed') DESC, s.position DESC LIMIT 1
    ) s ON true
    WHERE t.user_id = :user_id
    ORDER BY t.created_at DESC, t.id DESC
    LIMIT :limit
    """
)

_COUNTS = sa.text(
    """
    SELECT count(*) FILTER (WHERE status = 'completed') AS completed,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE status NOT IN ('completed', 'failed', 'cancelled')) AS active
    FROM tasks WHERE user_id = :user_id AND created_at >= now() - interval '30 days'
    """
)

# Jobs arrive with another issue: read them only where the table exists, whatever its columns.
_JOBS_TABLE = sa.text("SELECT to_regclass('public.jobs') IS NOT NULL")
_JOBS = sa.text("SELECT to_jsonb(j) AS job FROM jobs j WHERE j.user_id = :user_id ORDER BY j.created_at DESC LIMIT 10")


def recent_tasks(conn: sa.Connection, user_id: uuid.UUID, limit: int) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(_RECENT_TASKS, {"user_id": user_id, "limit": limit}).mappings()]


def task_counts_30d(conn: sa.Connection, user_id: uuid.UUID) -> dict[str, int]:
    return dict(conn.execute(_COUNTS, {"user_id": user_id}).mappings().one())


def jobs(conn: sa.Connection, user_id: uuid.UUID) -> list[dict[str, Any]] | None:
    """The caller's jobs (as JSON objects), or None where this deployment has no jobs table.

    Run outside a transaction (run_statement): a jobs table of another shape fails the second
    statement, which then says nothing of jobs rather than aborting a transaction around it."""
    if not conn.execute(_JOBS_TABLE).scalar_one():
        return None
    try:
        return [dict(r.job) for r in conn.execute(_JOBS, {"user_id": user_id})]
    except sa_exc.ProgrammingError:  # no user_id / created_at column: say nothing of jobs
        return None
