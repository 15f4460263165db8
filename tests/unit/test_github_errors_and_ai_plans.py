"""How GitHub's answers are sorted (rate limit / refusal) and how AI answers are checked."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from common.ai import AIPermanent, AIRateLimited, AITransient
from common.github.client import rate_limit_delay
from common.providers import customize
from common.providers.ai_plans import ISSUES_SCHEMA, AIFailed, AIUnusable, IssueDraft, IssuePlan, ask

NOW = 1_800_000_000.0


def _response(status: int, headers: dict[str, str] | None = None, body: str = "{}") -> httpx.Response:
    return httpx.Response(status, headers=headers or {}, text=body)


@pytest.mark.parametrize(
    ("status", "headers", "body", "delay"),
    [
        (403, {"retry-after": "30"}, "{}", 30.0),
        (429, {"retry-after": "7"}, "{}", 7.0),
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 120)}, "{}", 120.0),
        (429, {}, "{}", 60.0),
        (403, {}, '{"message": "You have exceeded a secondary rate limit"}', 60.0),
        (403, {}, '{"message": "Resource not accessible by integration"}', None),
        (404, {"retry-after": "30"}, "{}", None),
        (500, {}, "{}", None),
    ],
)
def test_rate_limits_are_recognised_by_githubs_rules(
    status: int, headers: dict[str, str], body: str, delay: float | None
) -> None:
    assert rate_limit_delay(_response(status, headers, body), NOW) == delay


class ScriptedAI:
    """Answers from a script: a dict is an answer, an exception is raised."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.prompts: list[str] = []

    def generate_json(self, prompt: str, schema: dict[str, Any], *, system: str = "") -> dict[str, Any]:
        self.prompts.append(prompt)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        answer: dict[str, Any] = step
        return answer


_ISSUE = {
    "title": "Add the recipe search",
    "body": "Search recipes by ingredient; acceptance: ...",
    "labels": ["Feature Request"],
}
_VALID = {"issues": [_ISSUE, {**_ISSUE, "title": "Weekly meal plan"}, {**_ISSUE, "title": "Shopping list"}]}


def test_an_invalid_answer_is_asked_again_with_the_error_and_labels_are_repaired() -> None:
    ai = ScriptedAI({"issues": [_ISSUE]}, AITransient("the AI service's answer does not match the schema: x"), _VALID)
    asked = ask(ai, "plan issues", ISSUES_SCHEMA, IssuePlan)
    assert asked.calls == 3
    assert "at least 3 items" in ai.prompts[1] and "not valid" in ai.prompts[2]
    assert asked.plan.issues[0].labels == ["feature-request"]


def test_three_invalid_answers_are_unusable_and_count_three_calls() -> None:
    with pytest.raises(AIUnusable) as raised:
        ask(ScriptedAI({}, {"issues": []}, {"issues": "no"}), "plan issues", ISSUES_SCHEMA, IssuePlan)
    assert raised.value.calls == 3


@pytest.mark.parametrize(
    "error",
    [AIRateLimited("slow down", retry_after=12), AITransient("the AI service answered 503"), AIPermanent("400")],
)
def test_service_failures_are_not_retried_here_and_count_only_answered_calls(error: Exception) -> None:
    with pytest.raises(AIFailed) as raised:
        ask(ScriptedAI({"issues": []}, error), "plan issues", ISSUES_SCHEMA, IssuePlan)
    assert raised.value.error is error and raised.value.calls == 1


def test_a_config_value_that_is_no_setting_for_its_key_is_dropped_and_the_template_value_stays() -> None:
    check = customize.customization_check("Shop", {"log_level": "info", "greeting": "Hello there", "port": 8080})
    answer = check(
        {"readme": "# Shop", "config": {"log_level": "--- Dockerfile ---", "greeting": "Welcome to the shop"}}
    )
    assert answer["config"] == {"greeting": "Welcome to the shop"}
    assert check({"readme": "# Shop", "config": {"log_level": "debug"}})["config"] == {"log_level": "debug"}
    with pytest.raises(ValueError, match="does not have: colour"):
        check({"readme": "# Shop", "config": {"colour": "green"}})


def test_an_issue_title_loses_its_markdown_heading_marks() -> None:
    draft = IssueDraft.model_validate({"title": "## Add a shopping list", "body": "The goal, and when it is done."})
    assert draft.title == "Add a shopping list"
