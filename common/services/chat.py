"""The assistant's chat: store the user's message, ask the model with the caller's data, store the reply.

Three short steps, so that no transaction stays open while the model thinks:
1. one transaction: quota (429 before anything is stored), the conversation (the caller's, or a
   new one titled from this first message) and the user's message, with its Idempotency-Key;
2. the model, given the caller's data and the conversation's history (no transaction);
3. one transaction: the reply, stored once per user message, and 1 AI operation metered.
When the model fails (503 + Retry-After) the user's message stays; the same request with the same
Idempotency-Key finds it and answers it then, without storing it twice.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from common.ai import AIClient
from common.errors import IdempotencyKeyReused, NotFound
from common.models_assistant import ChatMessage, ChatReply, ChatRequest, Conversation, ConversationList, MessageList
from common.queries import chat as q
from common.queries import idempotency as idempotency_q
from common.queries import users as user_q
from common.services import assistant_context as context
from common.services.projects import check_quota
from common.services.users import User

if TYPE_CHECKING:
    from common.runtime import Runtime

TITLE_CHARS = 60


@dataclass(frozen=True)
class ChatDeps:
    """What the chat uses, built at the entry point (tests build their own)."""

    ai: AIClient
    clock: Callable[[], datetime]


def title_of(message: str) -> str:
    """A conversation's title: its first message on one line, cut at a word near TITLE_CHARS."""
    text = " ".join(message.split())
    if len(text) <= TITLE_CHARS:
        return text
    cut = text[: TITLE_CHARS - 1]
    if " " in cut[TITLE_CHARS // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,.;:") + "…"


def _fingerprint(body: ChatRequest) -> str:
    canonical = json.dumps({"c": body.conversation_id, "m": body.message}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _message(row: dict[str, Any]) -> ChatMessage:
    return ChatMessage(message_id=str(row["id"]), role=row["role"], content=row["content"], timestamp=row["timestamp"])


@dataclass(frozen=True)
class _Pending:
    conversation_id: uuid.UUID
    question: dict[str, Any]  # the user's message row (with seq)
    reply: dict[str, Any] | None  # its reply, when an earlier request already stored one


def _store_question(
    rt: Runtime, conn: sa.Connection, user: User, body: ChatRequest, key: str | None, at: datetime
) -> _Pending:
    fingerprint = _fingerprint(body) if key else None
    if key:
        # Requests sharing a key are serialised, so that concurrent ones store one message.
        idempotency_q.lock_until_commit(conn, f"chat:{user.id}:{key}")
        earlier = q.message_by_key(conn, user.id, key)
        if earlier is not None:
            if earlier["fingerprint"] != fingerprint:
                raise IdempotencyKeyReused()
            reply = q.reply_to(conn, earlier["id"])
            if reply is None:
                check_quota(rt, conn, user)
            return _Pending(earlier["conversation_id"], earlier, reply)
    check_quota(rt, conn, user)
    if body.conversation_id is not None:
        conversation_id = uuid.UUID(body.conversation_id)
        if not q.lock_own_conversation(conn, user.id, conversation_id):
            raise NotFound("no conversation with that id")
    else:
        conversation_id = q.insert_conversation(conn, user.id, title_of(body.message), at)
    row = q.insert_message(
        conn,
        conversation_id=conversation_id,
        user_id=user.id,
        role="user",
        content=body.message,
        at=at,
        idempotency_key=key,
        fingerprint=fingerprint,
    )
    return _Pending(conversation_id, row, None)


def _store_reply(rt: Runtime, user: User, pending: _Pending, answer: str, at: datetime) -> dict[str, Any]:
    def work(conn: sa.Connection) -> dict[str, Any]:
        q.lock_message(conn, user.id, pending.question["id"])
        existing = q.reply_to(conn, pending.question["id"])
        if existing is not None:  # a concurrent retry answered first: one reply, metered once
            return existing
        reply = q.insert_message(
            conn,
            conversation_id=pending.conversation_id,
            user_id=user.id,
            role="assistant",
            content=answer,
            at=at,
            reply_to=pending.question["id"],
        )
        user_q.add_usage(conn, user.id, user_q.billing_period_start(at.date()), {"ai_operations": 1})
        return reply

    return rt.db.transaction(work)


def chat(rt: Runtime, user: User, body: ChatRequest, idempotency_key: str | None, deps: ChatDeps) -> ChatReply:
    """Answer one message of the caller (see the module's docstring for the steps)."""
    pending = rt.db.transaction(lambda conn: _store_question(rt, conn, user, body, idempotency_key, deps.clock()))
    reply = pending.reply
    if reply is None:
        question = pending.question
        history = rt.db.statement(
            lambda conn: q.history(
                conn, user.id, pending.conversation_id, question["seq"], context.HISTORY_MAX_MESSAGES
            )
        )
        system = context.read_context(rt, user.id, deps.clock())
        answer = deps.ai.generate_text(system, context.turns_within_budget(history, question["content"]))
        reply = _store_reply(rt, user, pending, answer, deps.clock())
    return ChatReply(
        conversation_id=str(pending.conversation_id), messages=[_message(pending.question), _message(reply)]
    )


def list_conversations(rt: Runtime, user: User) -> ConversationList:
    rows = rt.db.statement(lambda conn: q.conversations(conn, user.id))
    return ConversationList(
        conversations=[
            Conversation(
                conversation_id=str(r["id"]),
                title=r["title"],
                message_count=r["message_count"],
                created_at=r["created_at"],
                updated_at=r["updated_at"],
            )
            for r in rows
        ]
    )


def list_messages(rt: Runtime, user: User, conversation_id: uuid.UUID) -> MessageList:
    rows = rt.db.transaction(lambda conn: q.messages(conn, user.id, conversation_id))
    if rows is None:
        raise NotFound("no conversation with that id")
    return MessageList(conversation_id=str(conversation_id), messages=[_message(r) for r in rows])
