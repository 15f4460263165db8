"""common.ai against the Gemini stand-in: both URL shapes, JSON answers, error classification, and
the stand-in's shapes checked with google-genai's own types."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import requests
from pydantic import BaseModel, Field

from common.ai import AIPermanent, AIRateLimited, AISettings, AITransient, ChatTurn, GeminiClient
from dev.stack import free_port

CONTEXT = """Your tasks, newest first:
- task 7f3a "shop-front" failed at step deploying (attempt 3 of 3): error: Cloud Build quota exceeded in us-central1
- task 1b2c "blog" completed in 84 s
Usage this month: 12 of 100 AI operations."""


def client(standin: Any, **overrides: Any) -> GeminiClient:
    settings = AISettings(model="gemini-2.5-flash", project="planter-local", location="us-central1")
    values = {**settings.__dict__, "base_url": standin.base_url, **overrides}
    return GeminiClient(AISettings(**values))


def fault(standin: Any, **spec: Any) -> None:
    assert requests.post(f"{standin.base_url}/_faults", json=spec, timeout=5).status_code == 201


def recorded(standin: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = requests.get(f"{standin.base_url}/_requests", timeout=5).json()["requests"]
    return seen


def test_text_answer_quotes_the_failed_step_and_error_from_the_context(gemini: Any) -> None:
    answer = client(gemini).generate_text(CONTEXT, [ChatTurn("user", "Why did my last project fail?")])
    assert "deploying" in answer and "Cloud Build quota exceeded" in answer
    assert "blog" not in answer  # only the relevant lines are quoted
    [request] = recorded(gemini)
    # The Vertex AI URL shape, with the static local token.
    assert request["path"] == (
        "/v1beta1/projects/planter-local/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
    )
    assert "Why did my last project fail?" in request["prompt"] and "shop-front" in request["prompt"]


def test_developer_api_url_shape_with_an_api_key(gemini: Any) -> None:
    answer = client(gemini, api_key="placeholder-key").generate_text("", [ChatTurn("user", "hello there")])
    assert answer.startswith("I found nothing")
    assert recorded(gemini)[0]["path"].endswith("/models/gemini-2.5-flash:generateContent")
    assert "/projects/" not in recorded(gemini)[0]["path"]


class Issue(BaseModel):
    title: str = Field(max_length=60)
    body: str
    labels: list[str] = Field(min_length=1, max_length=3)
    priority: int = Field(ge=1, le=5)


class Issues(BaseModel):
    issues: list[Issue] = Field(min_length=3, max_length=7)


def test_json_answer_is_schema_valid_and_made_of_the_prompt(gemini: Any) -> None:
    prompt = "Write issues for the project shop-front.\nIt sells plants online.\nUse Flask."
    result = client(gemini).generate_json(prompt, Issues)
    assert isinstance(result, Issues) and len(result.issues) >= 1
    strings = [s for issue in result.issues for s in (issue.title, issue.body, *issue.labels)]
    assert all(any(s in line for line in prompt.splitlines()) for s in strings)
    body = recorded(gemini)[0]["body"]
    assert body["generationConfig"]["responseMimeType"] == "application/json"


def test_json_answer_for_a_json_schema(gemini: Any) -> None:
    schema = {
        "type": "object",
        "properties": {
            "summary": {"type": "string"},
            "items": {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 3},
        },
        "required": ["summary", "items"],
    }
    result = client(gemini).generate_json("alpha line\nbeta line", schema)
    assert result["summary"] == "alpha line" and result["items"] == ["beta line", "alpha line", "beta line"]


def test_stand_in_answers_parse_with_the_client_own_types(gemini: Any) -> None:
    from google.genai import types

    from dev.standins.gemini import generate_content

    body = {
        "contents": [{"role": "user", "parts": [{"text": "why did the deploy fail?"}]}],
        "systemInstruction": {"parts": [{"text": "deploy failed: quota"}]},
    }
    parsed = types.GenerateContentResponse.model_validate(generate_content("m", body))
    assert parsed.text is not None and "deploy failed: quota" in parsed.text
    client(gemini).generate_text("system words", [ChatTurn("user", "a question")])
    sent = recorded(gemini)[0]["body"]
    request = types.GenerateContentConfig.model_validate({"system_instruction": sent["systemInstruction"]})
    assert request.system_instruction is not None
    assert types.Content.model_validate(sent["contents"][0]).parts[0].text == "a question"  # type: ignore[index]


def test_rate_limit_carries_the_service_retry_after(gemini: Any) -> None:
    fault(gemini, method="POST", path=":generateContent$", status=429, times=1, headers={"Retry-After": "17"})
    with pytest.raises(AIRateLimited) as caught:
        client(gemini).generate_text("", [ChatTurn("user", "hi")])
    assert caught.value.retry_after == 17 and caught.value.headers["Retry-After"] == "17"
    assert "RESOURCE_EXHAUSTED" in caught.value.detail or "injected" in caught.value.detail
    assert not caught.value.permanent
    client(gemini).generate_text("", [ChatTurn("user", "hi")])  # times=1: the next call passes


def test_server_errors_are_transient_and_client_errors_permanent(gemini: Any) -> None:
    fault(gemini, path="generateContent", status=503, times=1)
    with pytest.raises(AITransient):
        client(gemini).generate_text("", [ChatTurn("user", "hi")])
    fault(
        gemini,
        path="generateContent",
        status=403,
        times=1,
        body={"error": {"code": 403, "message": "no access", "status": "PERMISSION_DENIED"}},
    )
    with pytest.raises(AIPermanent) as caught:
        client(gemini).generate_text("", [ChatTurn("user", "hi")])
    assert caught.value.permanent and "no access" in caught.value.detail


def test_an_answer_that_breaks_the_schema_is_transient(gemini: Any) -> None:
    bad = {"candidates": [{"content": {"role": "model", "parts": [{"text": '{"issues": []}'}]}}]}
    fault(gemini, path="generateContent", status=200, times=1, body=bad)
    with pytest.raises(AITransient):
        client(gemini).generate_json("x", Issues)


def test_nobody_listening_is_transient() -> None:
    settings = AISettings(model="m", project="p", location="l", base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(AITransient):
        GeminiClient(settings).generate_text("", [ChatTurn("user", "hi")])


def test_importing_the_client_does_not_import_google_genai() -> None:
    code = "import sys, common.ai; common.ai.GeminiClient; print('google.genai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_stand_in_quotes_context_not_instructions_and_fills_json_from_the_turns(gemini: Any) -> None:
    system = "You answer about failed projects.\nBe brief.\n\n" + CONTEXT
    answer = client(gemini).generate_text(system, [ChatTurn("user", "Why did my last project fail?")])
    assert "Cloud Build quota exceeded" in answer and "You answer about failed projects" not in answer
    result = client(gemini).generate_json("first line\nsecond line", Issues, system="never quoted")
    assert {issue.title for issue in result.issues} <= {"first line", "second line"}


def test_a_briefed_prompt_gets_a_readme_and_issues_written_from_the_brief(gemini: Any) -> None:
    from common.providers import customize
    from common.providers.ai_plans import ISSUES_SCHEMA

    wants = "A booking page for a yoga studio, with email reminders and a waiting list"
    readme_prompt = customize.customization_prompt("Calm Studio", wants, "python-service", {"app/main.py": "x"})
    readme_schema = {"type": "object", "properties": {"readme": {"type": "string"}}}
    answer = client(gemini).generate_json(readme_prompt, readme_schema)
    assert answer["readme"].startswith("# Calm Studio") and "- Email reminders" in answer["readme"]

    prompt = customize.issues_prompt("Calm Studio", wants, "o/calm-studio", None) + "\n- Add email reminders"
    titles = [i["title"] for i in client(gemini).generate_json(prompt, ISSUES_SCHEMA)["issues"]]
    assert titles[:2] == ["Build a booking page for a yoga studio", "Implement a waiting list"]
    assert len(titles) == 5 and len(set(titles)) == 5 and "Add email reminders" not in titles
