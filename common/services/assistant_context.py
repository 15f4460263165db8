"""What the assistant is told: the caller's own data as a context block, and the history rule.

The server fetches the data (every query scoped to the caller) and puts it in the system
instruction; the model is given no tools. docs/DESIGN.md ("The assistant") says why.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from common.ai import ChatTurn
from common.queries import chat as q
from common.queries import tasks as task_q
from common.queries import users as user_q
from common.timeutil import iso

if TYPE_CHECKING:
    from common.runtime import Runtime

RECENT_TASKS = 10
MAX_ERROR_CHARS = 400
# The history rule: the newest messages that fit HISTORY_CHAR_BUDGET characters (about 4 chars a
# token: ~8k tokens, far inside Gemini's window, leaving room for the context block and the reply),
# at most HISTORY_MAX_MESSAGES of them; the message being answered is always included.
HISTORY_MAX_MESSAGES = 40
HISTORY_CHAR_BUDGET = 32_000

INSTRUCTIONS = """You are Planter's assistant. Planter plants software projects: a pipeline creates a
GitHub repository from a template, customizes it with AI, creates a Google Cloud project, deploys it
and opens the first issues. Answer the user's questions about THEIR projects using only the data
below; when a project failed, name the step and the error and say what to do next. If the data does
not answer the question, say so. Never invent tasks, errors or figures."""


# What a user can do about a project that failed at each step: told to the model, so that its answer
# to "why did it fail, what do I do?" can say it (the model knows Planter only from this block).
_WHAT_TO_DO = {
    "creating_org": "install Planter's GitHub App on the organization (or plant in Planter's own), then retry",
    "forking_template": "if the repository name is taken, choose another project name; then retry",
    "customizing_project": "the AI service failed or kept answering unusably; retry the project later",
    "creating_gcp_project": "check the Google Cloud parent, billing account and project quota, then retry",
    "deploying": "open the build log named in the error, fix the repository's build, then redeploy it "
    "(a redeploy task) or retry the project",
    "creating_issues": "the repository and the deployment exist: a generate_issues task opens the issues",
}
_RETRY = "the dashboard's Retry button starts a new task with the same input"


def _clip(text: str | None, limit: int = MAX_ERROR_CHARS) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _failed_step(t: dict[str, Any]) -> str | None:
    return t["step_name"] or t["current_step"]  # type: ignore[no-any-return]


def _task_line(t: dict[str, Any]) -> str:
    head = f'- task {t["id"]} "{t["project_name"]}" ({t["type"]}), created {t["created_at"]}: {t["status"]}'
    if t["status"] == "failed":
        step = _failed_step(t) or "an unknown step"
        attempts = f" after {t['step_attempts']} of {t['step_max_attempts']} attempts" if t["step_name"] else ""
        error = t["step_error"] or t["error_message"]
        return f"{head}; failed at step {step}{attempts}: error: {_clip(error)}"
    if t["status"] == "completed":
        urls = ", ".join(u for u in (t["repo_url"], t["deployment_url"]) if u)
        return f"{head}{'; ' + urls if urls else ''}"
    if t["status"] == "cancelled":
        return head
    detail = f"; at step {t['current_step']} ({t['progress_percent']}%)" if t["current_step"] else ""
    if t["step_error"]:
        detail += f"; last error of step {t['step_name']}: {_clip(t['step_error'])}"
    return head + detail


def _job_line(job: dict[str, Any]) -> str:
    fields = ("name", "schedule", "timezone", "status", "last_run", "next_run", "consecutive_failures")
    return "- job " + ", ".join(f"{k}: {job[k]}" for k in fields if job.get(k) is not None)


def read_context(rt: Runtime, user_id: uuid.UUID, at: datetime) -> str:
    """The caller's data as plain lines: usage and quota, recent tasks (failures with their step and
    error), 30-day counts, and jobs where this deployment has them."""

    def work(conn: sa.Connection) -> dict[str, Any]:
        period = user_q.billing_period_start(at.date())
        return {
            "plan": user_q.plan_and_usage(conn, user_id, period),
            "reserved": task_q.in_flight_ai_operations(conn, user_id),
            "tasks": q.recent_tasks(conn, user_id, RECENT_TASKS),
            "counts": q.task_counts_30d(conn, user_id),
        }

    data = rt.db.transaction(work)
    jobs = rt.db.statement(lambda conn: q.jobs(conn, user_id))
    plan, counts, tasks = data["plan"], data["counts"], data["tasks"]
    limit = "unlimited" if plan["monthly_operations_limit"] == -1 else str(plan["monthly_operations_limit"])
    lines = [
        f"Now: {iso(at)}",
        f"Plan: {plan['tier']} tier, {limit} AI operations a month; used this month: "
        f"{plan['ai_operations_count']}, reserved by pipelines in flight: {data['reserved']}; "
        f"projects created this month: {plan['projects_created']}.",
        f"Last 30 days: {counts['completed']} completed, {counts['failed']} failed, "
        f"{counts['cancelled']} cancelled, {counts['active']} still running.",
    ]
    failed = next((t for t in tasks if t["status"] == "failed"), None)
    if failed is not None:
        lines.append("Most recent failed project:")
        lines.append(_task_line(failed))
        step = _failed_step(failed)
        if step in _WHAT_TO_DO:
            lines.append(f"What to do about the failed project: {_WHAT_TO_DO[step]}; {_RETRY}.")
    lines.append(f"Latest tasks, newest first ({len(tasks)}):" if tasks else "No tasks yet.")
    lines.extend(_task_line(t) for t in tasks)
    if jobs is not None:
        lines.append(f"Scheduled jobs ({len(jobs)}):" if jobs else "No scheduled jobs.")
        lines.extend(_job_line(json.loads(j) if isinstance(j, str) else j) for j in jobs)
    return INSTRUCTIONS + "\n\nThe user's data:\n" + "\n".join(lines)


def turns_within_budget(history: Sequence[dict[str, Any]], question: str) -> list[ChatTurn]:
    """The history rule (see HISTORY_CHAR_BUDGET) applied to ``history`` (oldest first), then the
    question. Turns alternate as Gemini expects: the first is the user's, and consecutive messages of
    one role (a question left unanswered by an AI failure) are joined into one turn."""
    budget = HISTORY_CHAR_BUDGET - len(question)
    kept: list[dict[str, Any]] = []
    for message in reversed(history[-HISTORY_MAX_MESSAGES:]):
        if message["role"] == "system":
            continue
        budget -= len(message["content"])
        if budget < 0:
            break
        kept.append(message)
    kept.reverse()
    turns: list[ChatTurn] = []
    for role, text in [*((m["role"], m["content"]) for m in kept), ("user", question)]:
        speaker: Literal["user", "model"] = "model" if role == "assistant" else "user"
        if not turns and speaker == "model":
            continue
        if turns and turns[-1].role == speaker:
            turns[-1] = ChatTurn(speaker, turns[-1].text + "\n\n" + text)
        else:
            turns.append(ChatTurn(speaker, text))
    return turns
