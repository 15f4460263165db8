"""What the AI is asked for in the pipeline, and how its answers are checked before use.

The model answers JSON against a response schema; the answer is validated again here (a schema
is a request, not a guarantee), repaired when it is only wrapped badly (code fences, prose
around the object), and otherwise asked again with the validation error. Nothing unvalidated is
committed or opened. Each model call is one metered AI operation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_CALLS = 3  # the first answer and two retries; then the step fails and is retried later


class AIAnswerer(Protocol):
    def generate_json(self, prompt: str, schema: dict[str, Any]) -> str:
        """The model's raw text answer to ``prompt``, asked to follow the JSON ``schema``."""


class AIUnusable(Exception):
    """The model kept answering something invalid; nothing was used (but the calls were made)."""

    def __init__(self, message: str, calls: int) -> None:
        super().__init__(message)
        self.calls = calls


class ConfigValue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=60)
    value: str = Field(max_length=200)


class Customization(BaseModel):
    """The edits of the template for one project."""

    model_config = ConfigDict(extra="forbid")
    package_name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,49}$", description="the project's package/service name")
    description: str = Field(min_length=10, max_length=300, description="one-sentence description")
    readme: str = Field(min_length=80, max_length=20000, description="README.md in Markdown, written for this project")
    config_values: list[ConfigValue] = Field(default_factory=list, max_length=20)

    @field_validator("readme")
    @classmethod
    def _readme_has_title(cls, value: str) -> str:
        if not value.lstrip().startswith("#"):
            raise ValueError("the README must start with a Markdown title")
        return value


class IssueDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=5, max_length=120)
    body: str = Field(min_length=20, max_length=4000)
    labels: list[str] = Field(default_factory=list, max_length=4)

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        for label in value:
            if not re.fullmatch(r"[a-z0-9][a-z0-9 :_-]{0,39}", label):
                raise ValueError(f"label {label!r} must be lowercase words, at most 40 characters")
        return value


class IssuePlan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    issues: list[IssueDraft] = Field(min_length=3, max_length=7)

    @field_validator("issues")
    @classmethod
    def _distinct(cls, value: list[IssueDraft]) -> list[IssueDraft]:
        titles = [i.title.strip().lower() for i in value]
        if len(set(titles)) != len(titles):
            raise ValueError("issue titles must be distinct")
        return value


Plan = TypeVar("Plan", bound=BaseModel)


def response_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema inlined (no $defs): what generateContent's responseSchema accepts."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: inline(v) for k, v in node.items() if k not in ("title", "additionalProperties", "default")}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    result: dict[str, Any] = inline(schema)
    return result


def parse_answer(text: str, model: type[Plan]) -> Plan:
    """The answer validated; a JSON object wrapped in fences or prose is unwrapped first."""
    candidates = [text.strip()]
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    if fenced:
        candidates.append(fenced.group(1).strip())
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    error: Exception = ValueError("the answer holds no JSON object")
    for candidate in candidates:
        try:
            return model.model_validate(json.loads(candidate))
        except (ValueError, ValidationError) as exc:
            error = exc
    raise error


@dataclass
class Asked:
    """A validated plan and the model calls it took (each one metered)."""

    plan: Any
    calls: int


def ask(ai: AIAnswerer, prompt: str, model: type[Plan], extra_check: Callable[[Plan], None] | None = None) -> Asked:
    """Ask until the answer validates, at most MAX_CALLS times; AIUnusable after that."""
    schema = response_schema(model)
    question = prompt
    last_error = ""
    for call in range(1, MAX_CALLS + 1):
        text = ai.generate_json(question, schema)
        try:
            plan = parse_answer(text, model)
            if extra_check is not None:
                extra_check(plan)
            return Asked(plan, call)
        except (ValueError, ValidationError) as exc:
            last_error = str(exc)[:800]
            question = (
                f"{prompt}\n\nYour previous answer was not valid: {last_error}\n"
                "Answer again with only a JSON object that follows the schema."
            )
    raise AIUnusable(f"the AI service answered {MAX_CALLS} times without a valid plan: {last_error}", MAX_CALLS)
