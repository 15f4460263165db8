"""Request and response bodies of the assistant: chat, insights and step analytics."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from common.models import Model, StrictModel
from common.pipeline import TASK_TYPES

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
MAX_MESSAGE_CHARS = 4000


class ChatRequest(StrictModel):
    conversation_id: str | None = Field(None, pattern=UUID_PATTERN, description="Omit to start a conversation.")
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class ChatMessage(Model):
    message_id: str
    role: Literal["user", "assistant", "system"]
    content: str
    timestamp: str


class ChatReply(Model):
    conversation_id: str
    messages: list[ChatMessage] = Field(description="The user's message, then the assistant's reply.")


class Conversation(Model):
    conversation_id: str
    title: str
    message_count: int
    created_at: str
    updated_at: str


class ConversationList(Model):
    conversations: list[Conversation] = Field(description="Newest (most recently active) first; at most 100.")


class MessageList(Model):
    conversation_id: str
    messages: list[ChatMessage] = Field(description="Oldest first.")


class Insight(Model):
    insight_id: str
    type: Literal["failure_hotspot", "slow_step", "quota_forecast", "weekly_trend", "stuck_tasks"]
    title: str
    description: str
    data: dict[str, Any]
    confidence: float = Field(ge=0, le=1)
    recommendations: list[str]


class Insights(Model):
    insights: list[Insight]
    generated_at: str
    cached: bool = Field(description="Served from the hour-long cache.")
    stale: bool = Field(description="The AI service failed: the last cached set, older than an hour.")


class StepStatsQuery(StrictModel):
    days: int = Field(30, ge=1, le=90)
    type: Literal[TASK_TYPES] = Field("create_project", description="The task type.")  # type: ignore[valid-type]


class StepStats(Model):
    name: str
    runs: int = Field(description="Step runs that ended (succeeded or finally failed).")
    succeeded: int
    failed: int
    retries: int = Field(description="Attempts beyond the first.")
    failure_rate: float = Field(ge=0, le=1)
    p50_seconds: float | None
    p95_seconds: float | None
    share_of_time: float = Field(ge=0, le=1, description="This step's share of the time all steps took.")


class StepStatsList(Model):
    steps: list[StepStats] = Field(description="In pipeline order.")
