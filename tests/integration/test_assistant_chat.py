"""The assistant's chat through the gateway, against the Gemini stand-in and a real PostgreSQL."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from common.runtime import Runtime
from common.services.assistant_context import HISTORY_CHAR_BUDGET, turns_within_budget
from common.services.chat import title_of
from tests.conftest import with_settings
from tests.contract import assert_problem
from tests.integration.assistant_seed import add_task, add_user, failed, ok

CHAT = "/api/v1/chat"
CONVERSATIONS = "/api/v1/chat/conversations"
ALICE, BOB = "alice@example.test", "bob@example.test"
ALICE_ERROR = "Cloud Build quota exceeded in us-central1: request a higher build quota"
BOB_ERROR = "bob-only secret error 5eb0"
Headers = Callable[..., dict[str, str]]


@pytest.fixture
def client(gemini_client: Any) -> Any:
    """Every request of this module goes to a runtime whose AI service is the Gemini stand-in."""
    return gemini_client


def count(engine: sa.Engine, sql: str, **params: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql), params).scalar_one())


def prompts(gemini: Any) -> list[str]:
    return [r["prompt"] for r in requests.get(f"{gemini.base_url}/_requests", timeout=5).json()["requests"]]


def seed_projects(engine: sa.Engine) -> dict[str, uuid.UUID]:
    now = datetime.now(UTC)
    alice, bob = add_user(engine, ALICE), add_user(engine, BOB)
    steps_ok = [ok("creating_org", 2), ok("forking_template", 5), ok("customizing_project", 30)]
    return {
        "alice_done": add_task(
            engine,
            alice,
            name="garden-blog",
            status="completed",
            created=now - timedelta(days=2),
            steps=[*steps_ok, ok("creating_gcp_project", 20), ok("deploying", 100)],
        ),
        "alice_failed": add_task(
            engine,
            alice,
            name="shop-front",
            status="failed",
            created=now - timedelta(hours=3),
            steps=[*steps_ok, ok("creating_gcp_project", 20), failed("deploying", 300, ALICE_ERROR)],
            error_message=f"deploying failed: {ALICE_ERROR}",
        ),
        "bob_failed": add_task(
            engine,
            bob,
            name="bob-private-repo",
            status="failed",
            created=now - timedelta(hours=1),
            steps=[failed("creating_org", 3, BOB_ERROR)],
            error_message=BOB_ERROR,
        ),
    }


def test_why_did_my_last_project_fail_names_the_step_and_the_error(
    client: Any, gemini: Any, auth_header: Headers, engine: sa.Engine
) -> None:
    ids = seed_projects(engine)
    response = client.post(CHAT, json={"message": "Why did my last project fail?"}, headers=auth_header(ALICE))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    user_message, reply = body["messages"]
    assert (user_message["role"], user_message["content"]) == ("user", "Why did my last project fail?")
    assert reply["role"] == "assistant"
    assert "deploying" in reply["content"] and ALICE_ERROR in reply["content"] and "shop-front" in reply["content"]
    assert "What to do about the failed project: open the build log" in reply["content"]
    # Another user's task is neither in the reply nor anywhere in what the model was told.
    [prompt] = prompts(gemini)
    assert str(ids["alice_failed"]) in prompt and "garden-blog" in prompt
    for secret in ("bob-private-repo", BOB_ERROR, str(ids["bob_failed"])):
        assert secret not in prompt and secret not in reply["content"]
    # One AI operation metered; the conversation is titled from its first message.
    assert (
        count(
            engine,
            "SELECT ai_operations_count FROM usage u JOIN users s ON s.id = u.user_id WHERE s.email = :e",
            e=ALICE,
        )
        == 1
    )
    listed = client.get(CONVERSATIONS, headers=auth_header(ALICE)).get_json()["conversations"]
    assert [(c["conversation_id"], c["title"], c["message_count"]) for c in listed] == [
        (body["conversation_id"], "Why did my last project fail?", 2)
    ]


def test_history_is_oldest_first_conversations_newest_first_and_private(
    client: Any, gemini: Any, auth_header: Headers, engine: sa.Engine
) -> None:
    seed_projects(engine)
    first = client.post(CHAT, json={"message": "How many projects failed?"}, headers=auth_header(ALICE)).get_json()
    conversation = first["conversation_id"]
    second = client.post(
        CHAT,
        json={"conversation_id": conversation, "message": "And what about garden-blog?"},
        headers=auth_header(ALICE),
    ).get_json()
    other = client.post(CHAT, json={"message": "Another topic"}, headers=auth_header(ALICE)).get_json()
    # The second question reached the model with the first exchange before it.
    second_prompt = prompts(gemini)[1]
    assert second_prompt.index("How many projects failed?") < second_prompt.index("And what about garden-blog?")

    messages = client.get(f"{CONVERSATIONS}/{conversation}/messages", headers=auth_header(ALICE)).get_json()
    expected = [m["message_id"] for m in first["messages"] + second["messages"]]
    assert [m["message_id"] for m in messages["messages"]] == expected
    assert [m["role"] for m in messages["messages"]] == ["user", "assistant", "user", "assistant"]
    listed = client.get(CONVERSATIONS, headers=auth_header(ALICE)).get_json()["conversations"]
    assert [c["conversation_id"] for c in listed] == [other["conversation_id"], conversation]

    # Bob: 404 for Alice's conversation, to read or to write in, and he lists none of hers.
    assert_problem(client.get(f"{CONVERSATIONS}/{conversation}/messages", headers=auth_header(BOB)), 404)
    assert_problem(client.get(f"{CONVERSATIONS}/not-a-uuid/messages", headers=auth_header(BOB)), 404)
    before = count(engine, "SELECT count(*) FROM chat_messages")
    refused = client.post(CHAT, json={"conversation_id": conversation, "message": "hi"}, headers=auth_header(BOB))
    assert_problem(refused, 404)
    assert count(engine, "SELECT count(*) FROM chat_messages") == before
    assert client.get(CONVERSATIONS, headers=auth_header(BOB)).get_json() == {"conversations": []}


def test_over_quota_is_429_before_anything_is_stored(
    client: Any, gemini: Any, auth_header: Headers, engine: sa.Engine
) -> None:
    alice = add_user(engine, ALICE)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO usage (user_id, period_start, ai_operations_count) "
                "VALUES (:u, date_trunc('month', now() AT TIME ZONE 'UTC')::date, 100)"
            ),
            {"u": alice.id},
        )
    refused = client.post(CHAT, json={"message": "hello"}, headers={**auth_header(ALICE), "Idempotency-Key": "k1"})
    assert "100 AI operations" in assert_problem(refused, 429)["detail"]
    assert count(engine, "SELECT count(*) FROM conversations") == 0
    assert count(engine, "SELECT count(*) FROM chat_messages") == 0
    assert prompts(gemini) == []


def test_an_ai_failure_keeps_the_message_and_the_same_key_answers_it_once(
    client: Any, gemini: Any, auth_header: Headers, engine: sa.Engine
) -> None:
    seed_projects(engine)
    fault = {"method": "POST", "path": "generateContent", "status": 429, "times": 1, "headers": {"Retry-After": "17"}}
    requests.post(f"{gemini.base_url}/_faults", json=fault, timeout=5)
    headers = {**auth_header(ALICE), "Idempotency-Key": "ask-1"}
    question = {"message": "Why did my last project fail?"}

    failed_once = client.post(CHAT, json=question, headers=headers)
    assert_problem(failed_once, 503)
    assert failed_once.headers["Retry-After"] == "17"  # the AI service's own figure
    assert count(engine, "SELECT count(*) FROM chat_messages WHERE role = 'user'") == 1  # kept
    assert count(engine, "SELECT count(*) FROM chat_messages WHERE role = 'assistant'") == 0

    answered = client.post(CHAT, json=question, headers=headers)
    assert answered.status_code == 200
    again = client.post(CHAT, json=question, headers=headers)  # replayed: no AI call, nothing stored
    assert again.get_json() == answered.get_json()
    assert len(prompts(gemini)) == 2
    assert count(engine, "SELECT count(*) FROM chat_messages WHERE role = 'user'") == 1
    assert count(engine, "SELECT count(*) FROM chat_messages WHERE role = 'assistant'") == 1
    assert count(engine, "SELECT message_count FROM conversations") == 2
    assert count(engine, "SELECT ai_operations_count FROM usage") == 1
    assert ALICE_ERROR in answered.get_json()["messages"][1]["content"]

    other_body = client.post(CHAT, json={"message": "something else"}, headers=headers)
    assert "Idempotency-Key" in assert_problem(other_body, 422)["errors"]


def test_a_server_error_of_the_ai_service_is_503_with_retry_after(
    client: Any, gemini: Any, auth_header: Headers, engine: sa.Engine
) -> None:
    requests.post(f"{gemini.base_url}/_faults", json={"path": ".", "status": 500, "times": 1}, timeout=5)
    response = client.post(CHAT, json={"message": "hello"}, headers=auth_header(ALICE))
    assert_problem(response, 503)
    assert int(response.headers["Retry-After"]) >= 1


def test_invalid_messages_are_422(client: Any, gemini: Any, auth_header: Headers, engine: sa.Engine) -> None:
    for body in (
        {"message": ""},
        {"message": "   "},
        {"message": "x" * 4001},
        {"message": "hi", "extra": 1},
        {"message": "hi", "conversation_id": "nope"},
    ):
        assert_problem(client.post(CHAT, json=body, headers=auth_header(ALICE)), 422)
    assert count(engine, "SELECT count(*) FROM chat_messages") == 0


def test_titles_come_from_the_first_message() -> None:
    assert title_of("  Why did   my\nproject fail? ") == "Why did my project fail?"
    long = title_of("Please tell me everything about the deploy step of my shop-front project and the errors")
    assert long.endswith("…") and len(long) <= 60 and long.startswith("Please tell me everything")


def test_long_conversations_keep_the_newest_messages_within_the_budget() -> None:
    history = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i} " + "x" * 3000} for i in range(30)
    ]
    turns = turns_within_budget(history, "the question")
    text = "".join(t.text for t in turns)
    assert len(text) <= HISTORY_CHAR_BUDGET
    assert turns[-1].text.endswith("the question") and turns[0].role == "user"
    assert "message 29" in text and "message 0 " not in text
    assert all(a.role != b.role for a, b in itertools.pairwise(turns))  # alternating
    # An unanswered question (an AI failure) merges with the next one rather than breaking alternation.
    merged = turns_within_budget([{"role": "user", "content": "first"}], "second")
    assert [(t.role, t.text) for t in merged] == [("user", "first\n\nsecond")]


def test_concurrent_requests_with_one_key_store_one_message_and_one_reply(
    client: Any, runtime: Runtime, gemini: Any, auth_header: Headers, engine: sa.Engine
) -> None:
    from dev.gateway import create_app

    seed_projects(engine)
    n = 6
    barrier = threading.Barrier(n)
    answers: list[tuple[int, Any]] = []
    app = create_app(with_settings(runtime, ai_base_url=gemini.base_url))
    headers = {**auth_header(ALICE), "Idempotency-Key": "double-click"}

    def submit() -> None:
        own_client = app.test_client()
        barrier.wait()
        response = own_client.post(CHAT, json={"message": "Why did my last project fail?"}, headers=headers)
        answers.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=submit) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [status for status, _ in answers] == [200] * n
    assert len({str(body["messages"]) for _, body in answers}) == 1  # one question, one reply, for all
    assert count(engine, "SELECT count(*) FROM chat_messages WHERE role = 'user'") == 1
    assert count(engine, "SELECT count(*) FROM chat_messages WHERE role = 'assistant'") == 1
    assert count(engine, "SELECT ai_operations_count FROM usage") == 1
