"""What the AI is asked for in the pipeline, and how its answers are checked before use.

The model answers JSON against a response schema (common.ai). The answer is validated again here
(a schema is a request, not a guarantee), repaired where a repair is unambiguous (a README
without its title, labels in the wrong case), and otherwise asked again with the validation
error in the prompt. Nothing unvalidated is committed or opened. Each model call that answered
is one AI operation, metered whether or not its answer was usable.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from common.ai import AIServiceError, AITransient

MAX_CALLS = 3  # the first answer and two more; then the step fails and is retried with backoff
_UNPARSABLE = "does not match the schema"  # common.ai's words for an answer that is not valid JSON


class JSONAnswerer(Protocol):
    """The part of common.ai's client the pipeline uses: a JSON answer to a JSON Schema."""

    def generate_json(self, prompt: str, schema: dict[str, Any], *, system: str = "") -> dict[str, Any]: ...


class AIUnusable(Exception):
    """The model kept answering something invalid; nothing was used (but the calls were made)."""

    def __init__(self, message: str, calls: int) -> None:
        super().__init__(message)
        self.calls = calls


class AIFailed(Exception):
    """The AI service itself failed (rate limit, outage, refusal) after ``calls`` answered calls."""

    def __init__(self, error: AIServiceError, calls: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.calls = calls


class Customization(BaseModel):
    """The AI's part of the template's edits for one project (names are derived, not asked)."""

    model_config = ConfigDict(extra="ignore")
    description: str = Field(min_length=10, max_length=300, description="one-sentence description of the project")
    readme: str = Field(min_length=40, max_length=20000, description="README.md in Markdown, written for this project")
    config: dict[str, str] = Field(default_factory=dict, description="new values for the template's config keys")


class IssueDraft(BaseModel):
    model_config = ConfigDict(extra="ignore")
    title: str = Field(min_length=5, max_length=120)
    body: str = Field(min_length=20, max_length=4000)
    labels: list[str] = Field(default_factory=list, max_length=4)

    @field_validator("title", mode="before")
    @classmethod
    def _title(cls, value: object) -> object:
        # Repaired: a title is plain text, so Markdown heading marks ("# Setup") are dropped.
        return value.strip().lstrip("#").strip() if isinstance(value, str) else value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        # Repaired, not refused: "Good First Issue" → "good-first-issue"; what is left empty is dropped.
        cleaned = (re.sub(r"[^a-z0-9:_-]+", "-", label.strip().lower()).strip("-")[:40] for label in value)
        return sorted({label for label in cleaned if label})


def _distinct_titles(issues: list[IssueDraft]) -> list[IssueDraft]:
    titles = [i.title.strip().lower() for i in issues]
    if len(set(titles)) != len(titles):
        raise ValueError("issue titles must be distinct")
    return issues


# The issues of a plan: two with the same title (case and outer spaces aside) would be one issue twice.
DistinctIssues = Annotated[list[IssueDraft], AfterValidator(_distinct_titles)]


class IssuePlan(BaseModel):
    model_config = ConfigDict(extra="ignore")
    issues: DistinctIssues = Field(min_length=3, max_length=7)


def customization_schema(config_keys: list[str]) -> dict[str, Any]:
    """The response schema: config limited to the template's own keys (a typo cannot add one)."""
    return {
        "type": "object",
        "properties": {
            "description": {"type": "string", "maxLength": 300},
            "readme": {"type": "string"},
            "config": {"type": "object", "properties": {k: {"type": "string"} for k in config_keys}},
        },
        "required": ["description", "readme"],
    }


ISSUES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "issues": {
            "type": "array",
            "minItems": 3,
            "maxItems": 7,
            "items": {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "maxLength": 120},
                    "body": {"type": "string"},
                    "labels": {"type": "array", "maxItems": 4, "items": {"type": "string", "maxLength": 40}},
                },
                "required": ["title", "body"],
            },
        }
    },
    "required": ["issues"],
}

Plan = TypeVar("Plan", bound=BaseModel)


@dataclass
class Asked:
    """A validated plan and the model calls it took (each one metered)."""

    plan: Any
    calls: int


def ask(
    ai: JSONAnswerer,
    prompt: str,
    schema: dict[str, Any],
    model: type[Plan],
    check: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Asked:
    """Ask until the answer validates, at most MAX_CALLS times.

    ``check`` repairs or refuses the raw answer before validation (ValueError: refused).
    AIUnusable when no answer was valid; AIFailed when the service itself failed.
    """
    question, last_error = prompt, ""
    for call in range(1, MAX_CALLS + 1):
        try:
            raw = ai.generate_json(question, schema)
        except AITransient as error:
            if _UNPARSABLE not in str(error):
                raise AIFailed(error, call - 1) from error
            last_error = str(error)[:600]
        except AIServiceError as error:
            raise AIFailed(error, call - 1) from error
        else:
            try:
                return Asked(model.model_validate(check(raw) if check else raw), call)
            except (ValueError, ValidationError) as error:
                last_error = str(error)[:600]
        question = (
            f"{prompt}\n\nYour previous answer was not valid: {last_error}\n"
            "Answer again with only a JSON object that follows the schema."
        )
    raise AIUnusable(f"the AI service answered {MAX_CALLS} times without a valid plan: {last_error}", MAX_CALLS)
