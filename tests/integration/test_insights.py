"""Dashboard insights: computed in SQL, phrased by the Gemini stand-in, cached an hour by an injected
clock, stale on failure, single-flight per user."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, overload

import pytest
import requests
import sqlalchemy as sa
from pydantic import BaseModel

from common.ai import AISettings, ChatTurn, GeminiClient
from common.runtime import Runtime
from common.services.insights import InsightDeps, get_insights
from common.services.users import User
from tests.integration.assistant_seed import StepRun, add_task, add_user, failed, ok

M = TypeVar("M", bound=BaseModel)
ALICE, BOB = "alice@example.test", "bob@example.test"
DEPLOY_ERROR = "Cloud Build quota exceeded"
Headers = Callable[..., dict[str, str]]


@pytest.fixture
def client(gemini_client: Any) -> Any:
    """Every request of this module goes to a runtime whose AI service is the Gemini stand-in."""
    return gemini_client


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class SlowCountingAI:
    """The real client against the stand-in, slowed down so that concurrent requests overlap."""

    def __init__(self, inner: GeminiClient, delay: float):
        self.inner, self.delay, self.calls = inner, delay, 0
        self._lock = threading.Lock()

    def generate_text(self, system: str, messages: Sequence[ChatTurn]) -> str:
        return self.inner.generate_text(system, messages)

    @overload
    def generate_json(self, prompt: str, schema: type[M], *, system: str = "") -> M: ...

    @overload
    def generate_json(self, prompt: str, schema: dict[str, Any], *, system: str = "") -> dict[str, Any]: ...

    def generate_json(self, prompt: str, schema: Any, *, system: str = "") -> Any:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        return self.inner.generate_json(prompt, schema, system=system)


def ai_client(gemini: Any) -> GeminiClient:
    return GeminiClient(
        AISettings(model="gemini-2.5-flash", project="p", location="us-central1", base_url=gemini.base_url)
    )


def ai_calls(gemini: Any) -> int:
    return len(requests.get(f"{gemini.base_url}/_requests", timeout=5).json()["requests"])


def seed_mixed(engine: sa.Engine, now: datetime) -> User:
    """Alice: three projects completed, two failed at deploying, one stuck; 60 AI operations used."""
    alice = add_user(engine, ALICE)
    early = [
        ok("creating_org", 2),
        ok("forking_template", 5),
        ok("customizing_project", 30),
        ok("creating_gcp_project", 20),
    ]
    for days in (1, 2, 9):
        add_task(
            engine,
            alice,
            name=f"done-{days}",
            status="completed",
            created=now - timedelta(days=days),
            steps=[*early, ok("deploying", 120), ok("creating_issues", 5)],
        )
    for hours in (3, 30):
        add_task(
            engine,
            alice,
            name=f"broken-{hours}",
            status="failed",
            created=now - timedelta(hours=hours),
            steps=[*early, failed("deploying", 300, DEPLOY_ERROR)],
        )
    add_task(
        engine,
        alice,
        name="stuck-one",
        status="deploying",
        created=now - timedelta(hours=2),
        steps=[*early, StepRun("deploying", "running")],
    )
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO usage (user_id, period_start, ai_operations_count) VALUES (:u, :p, 60)"),
            {"u": alice.id, "p": now.date().replace(day=1)},
        )
    return alice


def ten_at_once(request: Callable[[], Any]) -> list[Any]:
    """Ten calls of ``request`` released together (a barrier), from ten threads; their answers."""
    results: list[Any] = []
    barrier = threading.Barrier(10)

    def one() -> None:
        barrier.wait()
        results.append(request())

    threads = [threading.Thread(target=one) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_insights_of_a_user_with_mixed_outcomes(gemini: Any, engine: sa.Engine, runtime: Runtime) -> None:
    now = datetime.now(UTC)
    alice = seed_mixed(engine, now)
    bob = add_user(engine, BOB)
    add_task(
        engine,
        bob,
        name="bob-secret",
        status="failed",
        created=now - timedelta(hours=1),
        steps=[failed("creating_org", 1, "bob-only error")],
    )
    served = get_insights(runtime, alice, InsightDeps(ai=ai_client(gemini), clock=Clock(now)))
    assert (served.cached, served.stale) == (False, False)
    by_type = {i.type: i for i in served.insights}
    assert set(by_type) == {"stuck_tasks", "failure_hotspot", "quota_forecast", "weekly_trend"}
    hotspot = by_type["failure_hotspot"]
    assert hotspot.data == {
        "step": "deploying",
        "runs": 5,
        "failed": 2,
        "failure_rate": 0.4,
        "last_error": DEPLOY_ERROR,
    }
    assert by_type["stuck_tasks"].data["count"] == 1
    assert by_type["stuck_tasks"].data["tasks"][0]["project_name"] == "stuck-one"
    assert by_type["quota_forecast"].data["used"] == 60
    assert by_type["weekly_trend"].data["created_this_week"] == 5  # 2 + 2 + the stuck one; day 9 is last week
    # Phrased by the AI service from the prompt it was given (the stand-in answers with its lines).
    [request] = requests.get(f"{gemini.base_url}/_requests", timeout=5).json()["requests"]
    assert "2 of 5 runs of deploying failed" in request["prompt"] and "bob" not in request["prompt"]
    assert hotspot.title in request["prompt"] and hotspot.description in request["prompt"]
    assert 0 <= hotspot.confidence <= 1 and hotspot.recommendations
    with engine.connect() as conn:  # stored: the cache of the next hour
        stored = conn.execute(sa.text("SELECT count(*) FROM dashboard_insights WHERE user_id = :u"), {"u": alice.id})
        assert stored.scalar_one() == len(served.insights)


def test_cached_for_an_hour_single_flight_then_recomputed(gemini: Any, engine: sa.Engine, runtime: Runtime) -> None:
    start = datetime.now(UTC)
    alice = seed_mixed(engine, start)
    clock = Clock(start)
    ai = SlowCountingAI(ai_client(gemini), delay=0.5)
    deps = InsightDeps(ai=ai, clock=clock)

    # Ten concurrent requests with nothing cached: one AI call, one set for all of them.
    results = ten_at_once(lambda: get_insights(runtime, alice, deps))
    assert ai.calls == 1 and ai_calls(gemini) == 1
    assert len({r.generated_at for r in results}) == 1
    assert sorted(r.cached for r in results) == [False] + [True] * 9

    clock.now = start + timedelta(minutes=59)
    within = get_insights(runtime, alice, deps)
    assert within.cached and within.generated_at == results[0].generated_at and ai.calls == 1

    clock.now = start + timedelta(minutes=61)
    after = get_insights(runtime, alice, deps)
    assert not after.cached and after.generated_at != within.generated_at and ai.calls == 2


def test_stale_when_the_ai_service_fails_and_plain_words_without_a_cache(
    gemini: Any, engine: sa.Engine, runtime: Runtime
) -> None:
    start = datetime.now(UTC)
    alice = seed_mixed(engine, start)
    clock = Clock(start)
    deps = InsightDeps(ai=ai_client(gemini), clock=clock)
    requests.post(f"{gemini.base_url}/_faults", json={"path": ".", "status": 503, "times": 1}, timeout=5)

    plain = get_insights(runtime, alice, deps)  # nothing cached yet: the computed insights in plain words
    assert (plain.cached, plain.stale) == (False, False)
    assert "Step deploying fails most often" in [i.title for i in plain.insights]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM dashboard_insights")).scalar_one() == 0

    first = get_insights(runtime, alice, deps)  # the AI service is back
    assert not first.cached
    clock.now = start + timedelta(hours=2)
    requests.post(f"{gemini.base_url}/_faults", json={"path": ".", "status": 429, "times": 1}, timeout=5)
    stale = get_insights(runtime, alice, deps)
    assert (stale.cached, stale.stale) == (True, True)
    assert stale.generated_at == first.generated_at and stale.insights == first.insights


@pytest.mark.parametrize("cached_before", [True, False])
def test_ten_concurrent_requests_while_the_ai_service_fails_make_one_call(
    gemini: Any, engine: sa.Engine, runtime: Runtime, cached_before: bool
) -> None:
    start = datetime.now(UTC)
    alice = seed_mixed(engine, start)
    clock = Clock(start)
    ai = SlowCountingAI(ai_client(gemini), delay=0.5)
    deps = InsightDeps(ai=ai, clock=clock)
    earlier = get_insights(runtime, alice, deps) if cached_before else None
    clock.now = start + timedelta(hours=2)  # nothing fresh: every request would generate
    calls_before = ai.calls
    # The AI service fails every call it gets from now on (at most ten).
    requests.post(f"{gemini.base_url}/_faults", json={"path": ".", "status": 503, "times": 10}, timeout=5)

    results = ten_at_once(lambda: get_insights(runtime, alice, deps))
    assert ai.calls - calls_before == 1  # the waiters took the holder's failure as theirs
    assert len(results) == 10
    if earlier is not None:  # the last set, stale, for all
        assert {(r.cached, r.stale, r.generated_at) for r in results} == {(True, True, earlier.generated_at)}
    else:  # the computed insights in plain words, for all
        assert {(r.cached, r.stale) for r in results} == {(False, False)}
        assert all("Step deploying fails most often" in [i.title for i in r.insights] for r in results)


def test_the_insights_route(client: Any, gemini: Any, auth_header: Headers, engine: sa.Engine) -> None:
    seed_mixed(engine, datetime.now(UTC))
    first = client.get("/api/v1/dashboard/insights", headers=auth_header(ALICE))
    assert first.status_code == 200, first.get_json()
    second = client.get("/api/v1/dashboard/insights", headers=auth_header(ALICE)).get_json()
    assert (first.get_json()["cached"], second["cached"]) == (False, True)
    assert second["generated_at"] == first.get_json()["generated_at"]
    # The same set, whether fresh or from the cache: a client holding it gets a 304.
    again = client.get(
        "/api/v1/dashboard/insights", headers={**auth_header(ALICE), "If-None-Match": first.headers["ETag"]}
    )
    assert again.status_code == 304 and again.headers["ETag"] == first.headers["ETag"]
    bob = client.get("/api/v1/dashboard/insights", headers=auth_header(BOB)).get_json()
    assert {i["type"] for i in bob["insights"]} == {"quota_forecast", "weekly_trend"}
    assert "stuck-one" not in str(bob) and "deploying" not in str(bob)


def test_a_step_slower_than_its_usual_median(gemini: Any, engine: sa.Engine, runtime: Runtime) -> None:
    now = datetime.now(UTC)
    alice, bob = add_user(engine, ALICE), add_user(engine, BOB)
    for days in (10, 11, 12, 13, 14):  # everyone's usual deploy: 100 s (bob's older runs)
        add_task(
            engine,
            bob,
            name=f"b{days}",
            status="completed",
            created=now - timedelta(days=days),
            steps=[ok("deploying", 100)],
        )
    for hours in (2, 5):  # alice's deploys this week: 1000 s
        add_task(
            engine,
            alice,
            name=f"a{hours}",
            status="completed",
            created=now - timedelta(hours=hours),
            steps=[ok("deploying", 1000), ok("creating_issues", 3)],
        )
    served = get_insights(runtime, alice, InsightDeps(ai=ai_client(gemini), clock=Clock(now)))
    slow = [i for i in served.insights if i.type == "slow_step"]
    usual = {"usual_median_seconds": 100.0, "baseline": "everyone"}  # alice has no earlier runs of her own
    assert [i.data for i in slow] == [{"step": "deploying", "median_seconds_7d": 1000.0, **usual}]

    # With three earlier runs of her own (400 s), those are her usual: 1000 s is still slow against them.
    for days in (9, 12, 15):
        add_task(engine, alice, name=f"e{days}", status="completed", created=now - timedelta(days=days),
                 steps=[ok("deploying", 400)])  # fmt: skip
    served = get_insights(runtime, alice, InsightDeps(ai=ai_client(gemini), clock=Clock(now + timedelta(hours=2))))
    [slow_own] = [i for i in served.insights if i.type == "slow_step"]
    assert slow_own.data == {
        "step": "deploying",
        "median_seconds_7d": 1000.0,
        "usual_median_seconds": 400.0,
        "baseline": "own",
    }
    assert "your usual 400 s (your 3 earlier runs)" in slow_own.description


def test_a_week_without_tasks_has_no_success_rate_rather_than_zero_percent() -> None:
    from common.services.insight_facts import weekly_trend

    row = {"created_this_week": 4, "completed_this_week": 3, "failed_this_week": 1}
    [fact] = weekly_trend({**row, "created_last_week": 0, "completed_last_week": 0, "failed_last_week": 0})
    assert fact.recommendations[0] == "Success rate this week: 75%, last week: no tasks."
