"""The assistant's routes: chat, conversations, insights and step analytics (all scoped to the caller)."""

from __future__ import annotations

from common.errors import ValidationFailed
from common.http import Call, Reply
from common.models_assistant import ChatRequest, StepStatsQuery
from common.services import chat as chat_service
from common.services import insights as insight_service

MAX_IDEMPOTENCY_KEY = 255
_NO_STORE = {"Cache-Control": "private, no-store"}
# The dashboard's GETs are revalidated (ETag and 304 by the router's conditional_reply).
_REVALIDATE = {"Cache-Control": "private, no-cache"}


def _idempotency_key(call: Call) -> str | None:
    key = call.request.headers.get("Idempotency-Key")
    if key is not None and not (1 <= len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
        raise ValidationFailed(
            "the Idempotency-Key header is not valid", errors={"Idempotency-Key": "1-255 printable characters"}
        )
    return key


def chat(call: Call) -> Reply:
    body = call.json(ChatRequest)
    deps = chat_service.ChatDeps(ai=call.rt.ai, clock=call.rt.clock.now)
    return Reply(chat_service.chat(call.rt, call.user, body, _idempotency_key(call), deps), headers=dict(_NO_STORE))


def list_conversations(call: Call) -> Reply:
    return Reply(chat_service.list_conversations(call.rt, call.user), headers=dict(_NO_STORE))


def list_messages(call: Call) -> Reply:
    conversation_id = call.uuid_param("conversation_id")
    return Reply(chat_service.list_messages(call.rt, call.user, conversation_id), headers=dict(_NO_STORE))


def insights(call: Call) -> Reply:
    deps = insight_service.InsightDeps(ai=call.rt.ai, clock=call.rt.clock.now)
    return Reply(insight_service.get_insights(call.rt, call.user, deps), headers=dict(_REVALIDATE))


def step_analytics(call: Call) -> Reply:
    query = call.query(StepStatsQuery)
    return Reply(insight_service.step_stats(call.rt, call.user, query, call.rt.clock.now()), headers=dict(_REVALIDATE))
