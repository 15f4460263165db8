"""The assistant's routes: chat, conversations, insights and step analytics (all scoped to the caller)."""

from __future__ import annotations

import functools

from common.ai import AISettings, GeminiClient
from common.config import get_settings
from common.errors import ValidationFailed
from common.http import Call, Reply
from common.models_assistant import ChatRequest, StepStatsQuery
from common.services import chat as chat_service
from common.services import insights as insight_service
from common.timeutil import utcnow

MAX_IDEMPOTENCY_KEY = 255
_NO_STORE = {"Cache-Control": "private, no-store"}
# The dashboard's GETs are revalidated (ETag and 304 by the router's conditional_reply).
_REVALIDATE = {"Cache-Control": "private, no-cache"}


@functools.cache
def _client_for(settings: AISettings) -> GeminiClient:
    return GeminiClient(settings)


def _ai() -> GeminiClient:
    # One client per instance and configuration: google-genai keeps its connections between requests.
    return _client_for(AISettings.from_settings(get_settings()))


def _idempotency_key(call: Call) -> str | None:
    key = call.request.headers.get("Idempotency-Key")
    if key is not None and not (1 <= len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
        raise ValidationFailed(
            "the Idempotency-Key header is not valid", errors={"Idempotency-Key": "1-255 printable characters"}
        )
    return key


def chat(call: Call) -> Reply:
    body = call.json(ChatRequest)
    deps = chat_service.ChatDeps(ai=_ai(), clock=utcnow)
    return Reply(chat_service.chat(call.user, body, _idempotency_key(call), deps), headers=dict(_NO_STORE))


def list_conversations(call: Call) -> Reply:
    return Reply(chat_service.list_conversations(call.user), headers=dict(_NO_STORE))


def list_messages(call: Call) -> Reply:
    conversation_id = call.uuid_param("conversation_id")
    return Reply(chat_service.list_messages(call.user, conversation_id), headers=dict(_NO_STORE))


def insights(call: Call) -> Reply:
    deps = insight_service.InsightDeps(ai=_ai(), clock=utcnow)
    return Reply(insight_service.get_insights(call.user, deps), headers=dict(_REVALIDATE))


def step_analytics(call: Call) -> Reply:
    query = call.query(StepStatsQuery)
    return Reply(insight_service.step_stats(call.user, query, utcnow()), headers=dict(_REVALIDATE))
