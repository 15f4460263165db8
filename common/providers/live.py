"""The live step provider: each step does its real work through the real clients.

Keyed by step name (``LiveProvider.handlers``); everything it uses is passed in (``LiveConfig``,
a ``GitHubAccess``, an AI answerer factory), so tests build it against the stand-ins. Errors are
sorted here: rate limits → ``StepRateLimited`` (delayed redelivery at the provider's time),
outages → ``StepFailed`` (backoff), refusals nobody can retry away → ``StepRefused``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common.ai import AIRateLimited
from common.github import repos
from common.github.access import GitHubAccess
from common.github.app_auth import AppNotInstalled
from common.github.client import GitHubRefused, RateLimited, Unavailable
from common.models import slugify
from common.providers import (
    StepContext,
    StepFailed,
    StepOutcome,
    StepRateLimited,
    StepRefused,
    customize,
    more_issues,
)
from common.providers.ai_plans import (
    ISSUES_SCHEMA,
    AIFailed,
    AIUnusable,
    Customization,
    IssuePlan,
    JSONAnswerer,
    ask,
    customization_schema,
)
from common.providers.live_gcp import GcpSteps, StepAnswer

GCP_NOT_CONFIGURED = "Google Cloud is not configured for this deployment; the step was skipped"


@dataclass(frozen=True)
class LiveConfig:
    planter_org: str  # mode saas: the organization Planter plants into
    templates: tuple[str, ...]  # owner/repo, the first is the default
    app_install_url: str  # where a user installs Planter's GitHub App
    gcp_configured: bool = False


@dataclass(frozen=True)
class LiveProvider:
    config: LiveConfig
    github: GitHubAccess
    ai: Callable[[], JSONAnswerer]  # built on first use: google-genai is imported only by the AI steps
    gcp: GcpSteps | None = None  # None: Google Cloud is not configured, its steps are skipped

    def run(self, ctx: StepContext) -> StepAnswer:
        handlers: dict[str, Callable[[StepContext], StepAnswer]] = {
            "creating_org": self.creating_org,
            "forking_template": self.forking_template,
            "customizing_project": self.customizing_project,
            "creating_gcp_project": self.google_cloud,
            "deploying": self.google_cloud,
            "creating_issues": self.creating_issues,
            # The other task types (issue 16); their Google Cloud steps are issue 15's (live_gcp.py).
            "building_release": self.google_cloud,
            "redeploying": self.google_cloud,
            "deleting_gcp_project": self.google_cloud,
            "generating_issues": self.generating_issues,
            "archiving_repository": self.archiving_repository,
        }
        handler = handlers.get(ctx.step)
        if handler is None:
            raise StepRefused(f"the live provider has no step {ctx.step!r}")
        try:
            return handler(ctx)
        except RateLimited as error:
            raise StepRateLimited(str(error), error.retry_after) from error
        except AIFailed as failed:
            usage = {"ai_operations": failed.calls} if failed.calls else None
            if isinstance(failed.error, AIRateLimited):
                raise StepRateLimited(str(failed), failed.error.retry_after, usage) from failed
            if failed.error.permanent:
                raise StepRefused(f"the AI service refused the request: {failed}", usage) from failed
            raise StepFailed(str(failed), usage) from failed
        except AIUnusable as error:
            raise StepFailed(str(error), usage={"ai_operations": error.calls}) from error
        except Unavailable as error:
            raise StepFailed(str(error)) from error
        except AppNotInstalled as error:
            raise StepRefused(self._not_installed(error.owner)) from error
        except GitHubRefused as error:
            if error.status in (401, 403):
                raise StepRefused(
                    f"{error}. Planter's GitHub credentials or the App's permissions do not allow this: "
                    "check the App's installation grants repository administration, contents and issues"
                ) from error
            raise StepFailed(str(error)) from error

    def check(self, ctx: StepContext) -> StepAnswer:
        # Only the Google Cloud builds hand their work off (deploying, building_release).
        if self.gcp is not None and ctx.step in ("deploying", "building_release"):
            return self.gcp.check(ctx)
        raise StepRefused(f"{ctx.step} does not wait for outside work under the live provider")

    # --- helpers -----------------------------------------------------------------------------
    def _owner(self, ctx: StepContext) -> str:
        if ctx.mode == "user":
            owner = str(ctx.payload.get("github_owner") or "")
            if not owner:
                raise StepRefused("mode user needs github_owner: the organization where Planter's App is installed")
            return owner
        return self.config.planter_org

    def _not_installed(self, owner: str) -> str:
        return (
            f"Planter's GitHub App is not installed on {owner}: install it at {self.config.app_install_url} "
            "(repository administration, contents and issues), then create the project again"
        )

    @staticmethod
    def _repo_of(ctx: StepContext) -> tuple[str, str]:
        full = str(ctx.facts.get("project_id") or "")
        if full.count("/") != 1:
            url = str(ctx.facts.get("repo_url") or "").rstrip("/")
            full = "/".join(url.split("/")[-2:])
        owner, _, name = full.partition("/")
        if not owner or not name:
            raise StepRefused("the task has no repository: its forking_template step did not record one")
        return owner, name

    # --- steps ---------------------------------------------------------------------------------
    def creating_org(self, ctx: StepContext) -> StepOutcome:
        owner = self._owner(ctx)
        try:
            org = repos.check_owner(self.github.client(owner), owner)
        except GitHubRefused as error:
            if error.status != 404:
                raise
            raise StepRefused(
                f"the GitHub organization {owner} does not exist or Planter cannot see it: create it, install "
                f"Planter's GitHub App on it ({self.config.app_install_url}), then create the project again"
            ) from error
        installed = self.github.installation(owner)
        if installed is None:
            raise StepRefused(self._not_installed(owner))
        result = {"owner": owner, "org_url": org["html_url"], "installation_id": installed.get("id")}
        return StepOutcome(facts={"org_url": org["html_url"]}, result=result)

    def forking_template(self, ctx: StepContext) -> StepOutcome:
        owner = self._owner(ctx)
        template = str(ctx.payload.get("template") or self.config.templates[0].partition("=")[0])
        private = bool(ctx.payload.get("private", True))
        slug = slugify(ctx.project_name)
        marker = repos.repo_marker(ctx.task_id)
        description = f"{ctx.project_description[:300]} {marker}".strip()
        gh = self.github.client(owner)
        names = [slug, f"{slug[:90]}-{ctx.task_id[:6]}"] if ctx.mode == "saas" else [slug]
        try:
            for name in names:
                try:
                    repo = repos.generate(gh, template, owner, name, description, private, ctx.task_id)
                    break
                except repos.NameTaken:
                    continue
            else:
                raise StepRefused(
                    f"a repository named {owner}/{slug} already exists and was not planted by this task: "
                    "rename or delete it, or choose another project name"
                )
        except GitHubRefused as error:
            if error.status == 404:
                raise StepRefused(
                    f"the template {template} does not exist, is not a template repository, or Planter's App "
                    f"cannot read it; or the App cannot create repositories in {owner}"
                ) from error
            raise
        result = {
            "full_name": repo.full_name,
            "html_url": repo.html_url,
            "clone_url": repo.clone_url,
            "private": repo.private,
            "template": template,
            "adopted": repo.adopted,
        }
        return StepOutcome(
            facts={"repo_url": repo.html_url, "project_id": repo.full_name},
            usage={"projects_created": 1},
            result=result,
        )

    def customizing_project(self, ctx: StepContext) -> StepOutcome:
        owner, name = self._repo_of(ctx)
        gh = self.github.client(owner)
        try:
            sha, tree, message = repos.head(gh, owner, name)
        except GitHubRefused as error:
            if error.status == 409:  # "Git Repository is empty": GitHub is still copying the template
                raise StepFailed("the new repository is not ready on GitHub yet; retrying") from error
            raise
        html = str(ctx.facts.get("repo_url") or "")
        trailer = repos.commit_trailer(ctx.task_id)
        if trailer in message:  # an earlier attempt committed and lost its answer: adopt it
            return StepOutcome(result={"commit_sha": sha, "commit_url": f"{html}/commit/{sha}", "adopted": True})
        files = repos.text_files(gh, owner, name, tree)
        template = str(ctx.payload.get("template") or self.config.templates[0].partition("=")[0]).split("/")[-1]
        prompt = customize.customization_prompt(ctx.project_name, ctx.project_description, template, files)
        current = customize.config_values(files)
        check = customize.customization_check(ctx.project_name, current)
        asked = ask(self.ai(), prompt, customization_schema(list(current)), Customization, check)
        package = name
        changed, commit_message = customize.apply(asked.plan, files, template, package, trailer)
        usage = {"ai_operations": asked.calls}
        made = repos.commit_files(gh, owner, name, changed, commit_message, (sha, tree))
        commit = made or sha
        result = {
            "commit_sha": commit,
            "commit_url": f"{html}/commit/{commit}",
            "files_changed": sorted(changed),
            "package_name": package,
            "ai_calls": asked.calls,
            "unchanged": made is None,
        }
        return StepOutcome(usage=usage, result=result)

    def creating_issues(self, ctx: StepContext) -> StepOutcome:
        owner, name = self._repo_of(ctx)
        gh = self.github.client(owner)
        opened = repos.marked_issues(gh, owner, name, ctx.task_id)
        planned = _planned_count(opened)
        usage: dict[str, int] = {}
        if planned is None or len(opened) < planned:
            _, tree, _ = repos.head(gh, owner, name)
            readme = repos.read_text(gh, owner, name, tree, "README.md")
            prompt = customize.issues_prompt(ctx.project_name, ctx.project_description, f"{owner}/{name}", readme)
            asked = ask(self.ai(), prompt, ISSUES_SCHEMA, IssuePlan)
            usage["ai_operations"] = asked.calls
            # An earlier attempt's plan stands: its count, and none of its titles again (a model
            # asked twice does not plan the same issues twice).
            total = planned or len(asked.plan.issues)
            titles = {item["title"].strip().lower() for item in opened.values()}
            drafts = iter(d for d in asked.plan.issues if d.title.strip().lower() not in titles)
            new = 0
            for index in range(1, total + 1):
                draft = None if index in opened else next(drafts, None)
                if draft is None:
                    continue
                marker = repos.issue_marker(ctx.task_id, index, total)
                labels = sorted({*draft.labels, repos.ISSUE_LABEL})
                opened[index] = repos.open_issue(gh, owner, name, draft.title, f"{draft.body}\n\n{marker}", labels)
                new += 1
            usage["issues_generated"] = new
        issues = [
            {"number": item["number"], "title": item["title"], "url": item["html_url"], "api_url": item["url"]}
            for _, item in sorted(opened.items())
        ]
        return StepOutcome(usage=usage, result={"issues": issues})

    def generating_issues(self, ctx: StepContext) -> StepOutcome:
        owner, name = self._repo_of(ctx)
        try:
            return more_issues.generate_issues(self.github.client(owner), self.ai, ctx, owner, name)
        except GitHubRefused as error:
            # Retrying cannot bring back a deleted repository or unarchive one: say so at once.
            if error.status == 404:
                raise StepRefused(
                    f"the repository {owner}/{name} no longer exists (or Planter cannot see it)"
                ) from error
            if error.status == 403 and error.mentions("archived"):
                raise StepRefused(f"the repository {owner}/{name} is archived: unarchive it on GitHub first") from error
            raise

    def archiving_repository(self, ctx: StepContext) -> StepOutcome:
        if not (ctx.facts.get("project_id") or ctx.facts.get("repo_url")):
            # The project task failed or was cancelled before it made a repository: nothing to archive.
            absent = "the project task made no repository"
            return StepOutcome(facts={"repository": "absent"}, message=absent, result={"state": "absent"})
        owner, name = self._repo_of(ctx)
        return more_issues.archive_repository(self.github.client(owner), owner, name)

    def google_cloud(self, ctx: StepContext) -> StepAnswer:
        if self.gcp is not None:
            return self.gcp.run(ctx)
        # Without the GCP settings a live deployment says plainly that nothing was made.
        return StepOutcome(skipped=True, message=GCP_NOT_CONFIGURED, result={"skipped": GCP_NOT_CONFIGURED})


def _planned_count(opened: dict[int, dict[str, Any]]) -> int | None:
    for item in opened.values():
        found = repos.planned_of(item.get("body") or "")
        if found:
            return found
    return None
