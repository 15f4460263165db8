"""The steps of the live provider that work on a planted project: more issues, archiving.

Functions of a GitHub client and the step's context, called by LiveProvider (live.py), which maps
their errors to step outcomes. Both are create-if-absent: a redelivery adopts what an earlier
attempt made (issues carry the task's marker; an archived repository stays archived).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from common.github import repos
from common.github.client import GitHubClient
from common.providers import StepContext, StepOutcome, StepRefused
from common.providers.ai_plans import DistinctIssues, JSONAnswerer, ask
from common.providers.customize import PROMPT_FILE_CHARS


class MoreIssues(BaseModel):
    model_config = ConfigDict(extra="ignore")
    issues: DistinctIssues = Field(min_length=1, max_length=10)


def more_issues_schema(count: int) -> dict[str, Any]:
    item = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 5, "maxLength": 120},
            "body": {"type": "string", "minLength": 20},
            "labels": {"type": "array", "maxItems": 4, "items": {"type": "string", "maxLength": 40}},
        },
        "required": ["title", "body"],
    }
    issues = {"type": "array", "minItems": count, "maxItems": count, "items": item}
    return {"type": "object", "properties": {"issues": issues}, "required": ["issues"]}


def _exactly(count: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def check(raw: dict[str, Any]) -> dict[str, Any]:
        issues = raw.get("issues")
        if not isinstance(issues, list) or len(issues) < count:
            raise ValueError(f"answer with exactly {count} issues")
        return {**raw, "issues": issues[:count]}  # more than asked: the first ones, unambiguously

    return check


def more_issues_prompt(ctx: StepContext, repo: str, readme: str | None, existing: list[str], count: int) -> str:
    focus = str(ctx.payload.get("focus") or "").strip()
    titles = "\n".join(f"- {t}" for t in existing[:100]) or "(none)"
    return (
        f"Plan {count} new GitHub issue(s) for the project {ctx.project_name} ({repo}).\n"
        f"What the project is for: {ctx.project_description or '(no description given)'}\n"
        + (f"Focus the new issues on: {focus}\n" if focus else "")
        + "Each: a short title, a body with the goal and acceptance criteria in Markdown, up to 4 lowercase "
        "labels. Do not repeat an issue the repository already has:\n"
        f"{titles}\n\nThe project's README:\n{(readme or '')[:PROMPT_FILE_CHARS]}"
    )


def generate_issues(
    gh: GitHubClient, ai: Callable[[], JSONAnswerer], ctx: StepContext, owner: str, name: str
) -> StepOutcome:
    """Open the payload's ``count`` issues once: those this task already opened are adopted."""
    count = int(ctx.payload["count"])
    opened = repos.marked_issues(gh, owner, name, ctx.task_id)
    usage: dict[str, int] = {}
    missing = [index for index in range(1, count + 1) if index not in opened]
    if missing:
        if gh.request("GET", "/repos/{owner}/{repo}", owner=owner, repo=name).get("archived"):
            # Checked before the AI is asked: an archived repository would refuse the issues (403).
            raise StepRefused(f"the repository {owner}/{name} is archived: unarchive it on GitHub first")
        _, tree, _ = repos.head(gh, owner, name)
        readme = repos.read_text(gh, owner, name, tree, "README.md")
        existing = repos.issue_titles(gh, owner, name)
        prompt = more_issues_prompt(ctx, f"{owner}/{name}", readme, existing, count)
        asked = ask(ai(), prompt, more_issues_schema(count), MoreIssues, _exactly(count))
        usage["ai_operations"] = asked.calls
        for index in missing:
            draft = asked.plan.issues[index - 1]
            marker = repos.issue_marker(ctx.task_id, index, count)
            labels = sorted({*draft.labels, repos.ISSUE_LABEL})
            opened[index] = repos.open_issue(gh, owner, name, draft.title, f"{draft.body}\n\n{marker}", labels)
        usage["issues_generated"] = len(missing)
    issues = [
        {"number": item["number"], "title": item["title"], "url": item["html_url"], "api_url": item["url"]}
        for index, item in sorted(opened.items())
        if index <= count
    ]
    urls = " ".join(i["url"] for i in issues)
    return StepOutcome(facts={"issue_urls": urls}, usage=usage, result={"issues": issues, "adopted": not missing})


def archive_repository(gh: GitHubClient, owner: str, name: str) -> StepOutcome:
    state = repos.archive(gh, owner, name)
    words = {"archived": "archived", "already_archived": "was already archived", "absent": "is already gone"}
    return StepOutcome(
        facts={"repository": state},
        message=f"Repository {owner}/{name} {words[state]}",
        result={"repository": f"{owner}/{name}", "state": state},
    )
