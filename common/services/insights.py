"""Dashboard insights: computed in SQL, phrased by the AI service, cached per user for an hour.

- A set younger than CACHE_SECONDS (by the injected clock) is served as it is: ``cached: true``.
- Otherwise one request per user generates (single-flight: a transaction-scoped advisory lock
  taken without waiting); the others wait for its result, re-reading the cache, and never call the
  AI service themselves while it holds the lock.
- When the AI service fails: the last cached set with ``stale: true``; with none, the computed
  insights in plain words (not stored, so that the next request tries the AI service again).
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic import BaseModel, Field, ValidationError

from common.ai import AIClient, AIServiceError, AITransient
from common.models_assistant import Insight, Insights, StepStats, StepStatsList, StepStatsQuery
from common.plans import FREE_TIER, TIER_LIMITS
from common.queries import insights as q
from common.queries import users as user_q
from common.services.dashboard import LONG_RUNNING_SECONDS
from common.services.insight_facts import Fact, all_facts
from common.services.users import User
from common.timeutil import iso

if TYPE_CHECKING:
    from common.runtime import Runtime

CACHE_SECONDS = 3600
WAIT_POLL_SECONDS = 0.05

PHRASING_SYSTEM = """You write the insights of Planter's dashboard. You are given findings about one
user's pipelines, each as four lines: a title, a description, and two recommendations. Rewrite each
finding for that user: a short title, a description of one to three sentences that keeps every
figure, and one to three concrete recommendations. Keep the findings in their order; add none."""


class PhrasedInsight(BaseModel):
    title: str = Field(max_length=200)
    description: str = Field(max_length=1000)
    recommendations: list[str] = Field(min_length=1, max_length=3)


class PhrasedInsights(BaseModel):
    insights: list[PhrasedInsight]


@dataclass(frozen=True)
class InsightDeps:
    """What insights use, built at the entry point (tests build their own: a clock they move)."""

    ai: AIClient
    clock: Callable[[], datetime]
    wait_seconds: float = 40.0  # how long a request waits for another one's generation


def _served(rows: list[dict[str, Any]], *, cached: bool, stale: bool = False) -> Insights:
    return Insights(
        insights=[
            Insight(
                insight_id=str(r["id"]),
                type=r["type"],
                title=r["title"],
                description=r["description"],
                data=r["data"],
                confidence=r["confidence"],
                recommendations=r["recommendations"],
            )
            for r in rows
        ],
        generated_at=rows[0]["generated_at_iso"] if rows else "",
        cached=cached,
        stale=stale,
    )


def _fresh(rows: list[dict[str, Any]], now: datetime) -> bool:
    return bool(rows) and (now - rows[0]["generated_at"]).total_seconds() < CACHE_SECONDS


def _rows(facts: list[Fact], at: datetime) -> list[dict[str, Any]]:
    return [{**asdict(f), "id": uuid.uuid4(), "generated_at": at, "generated_at_iso": iso(at)} for f in facts]


def phrase(ai: AIClient, facts: list[Fact]) -> list[Fact]:
    """The facts with the AI service's wording; figures, types and confidence stay the computed ones."""
    prompt = "\n".join(line for f in facts for line in (f.title, f.description, *f.recommendations[:2]))
    # The schema asks for exactly one phrased insight per finding (JSON Schema's minItems/maxItems).
    schema = PhrasedInsights.model_json_schema()
    schema["properties"]["insights"].update(minItems=len(facts), maxItems=len(facts))
    answer = ai.generate_json(prompt, schema, system=PHRASING_SYSTEM)
    try:
        phrased = PhrasedInsights.model_validate(answer).insights
    except ValidationError as error:
        raise AITransient(f"the AI service's insights do not match the schema: {error}") from None
    if len(phrased) != len(facts):
        raise AITransient(f"the AI service phrased {len(phrased)} insights of {len(facts)}")
    return [
        Fact(f.type, p.title, p.description, f.data, f.confidence, list(p.recommendations))
        for f, p in zip(facts, phrased, strict=True)
    ]


def _phrased_or_none(ai: AIClient, facts: list[Fact]) -> list[Fact] | None:
    try:
        return phrase(ai, facts)
    except AIServiceError:
        return None


def _generate(conn: sa.Connection, user: User, deps: InsightDeps, *, ask_ai: bool = True) -> Insights | None:
    """Generate under the user's lock; None when another request holds it. Without ``ask_ai`` (the
    request waited on another's generation, which stored nothing: the AI service failed it) the
    failure's answer is served without asking the AI service again."""
    if not q.try_generation_lock(conn, user.id):
        return None
    now = deps.clock()
    cached = q.cached_set(conn, user.id)
    if _fresh(cached, now):  # generated by the request that held the lock before
        return _served(cached, cached=True)
    period_start = user_q.billing_period_start(now.astimezone(UTC).date())
    figures = q.facts(
        conn,
        user.id,
        at=now,
        period_start=period_start,
        long_running_seconds=LONG_RUNNING_SECONDS,
        default_tier=FREE_TIER,
        default_limit=TIER_LIMITS[FREE_TIER],
    )
    facts = all_facts(figures, now, period_start)
    phrased = _phrased_or_none(deps.ai, facts) if ask_ai else None
    if phrased is None:  # the AI service failed (this request's call, or the one it waited on)
        if cached:
            return _served(cached, cached=True, stale=True)
        return _served(_rows(facts, now), cached=False)
    rows = _rows(phrased, now)
    q.replace_set(conn, user.id, rows, now)
    return _served(rows, cached=False)


def get_insights(rt: Runtime, user: User, deps: InsightDeps) -> Insights:
    cached = rt.db.statement(lambda conn: q.cached_set(conn, user.id))
    if _fresh(cached, deps.clock()):
        return _served(cached, cached=True)
    deadline = time.monotonic() + deps.wait_seconds
    waited = False
    while True:
        # Once this request has waited on another's generation, it does not ask the AI service itself:
        # if that generation stored nothing fresh, the service just failed it (single flight, failures too).
        served = rt.db.transaction(functools.partial(_generate, user=user, deps=deps, ask_ai=not waited))
        if served is not None:
            return served
        waited = True
        # Another request of this user is generating: wait for its set rather than ask the AI again.
        time.sleep(WAIT_POLL_SECONDS)
        cached = rt.db.statement(lambda conn: q.cached_set(conn, user.id))
        if _fresh(cached, deps.clock()):
            return _served(cached, cached=True)
        if time.monotonic() > deadline:
            raise AITransient("the insights are still being generated", retry_after=5)


def step_stats(rt: Runtime, user: User, query: StepStatsQuery, at: datetime) -> StepStatsList:
    """Where the caller's pipelines of one type spend their time and fail, per step."""
    rows = rt.db.statement(lambda conn: q.step_stats(conn, user.id, query.type, query.days, at))
    return StepStatsList(
        steps=[
            StepStats(
                name=r["name"],
                runs=r["runs"],
                succeeded=r["succeeded"],
                failed=r["failed"],
                retries=int(r["retries"] or 0),
                failure_rate=round(r["failed"] / r["runs"], 4) if r["runs"] else 0.0,
                p50_seconds=None if r["p50_seconds"] is None else round(float(r["p50_seconds"]), 3),
                p95_seconds=None if r["p95_seconds"] is None else round(float(r["p95_seconds"]), 3),
                share_of_time=round(float(r["share_of_time"]), 4),
            )
            for r in rows
        ]
    )
