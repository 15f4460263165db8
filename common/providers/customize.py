"""Turning a validated Customization into file contents, and the prompts for both AI steps."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from common.providers.ai_plans import Customization, IssuePlan

CONFIG_PATH = "config/settings.json"
PROMPT_FILE_CHARS = 4000  # per file shown to the model; enough for a template's small files


def customization_prompt(project: str, description: str, template: str, files: dict[str, str]) -> str:
    shown = "\n\n".join(f"--- {path} ---\n{content[:PROMPT_FILE_CHARS]}" for path, content in sorted(files.items()))
    config = files.get(CONFIG_PATH)
    keys = ", ".join(json.loads(config)) if config else "(none)"
    return (
        f"You customize the template repository {template} for a new project.\n"
        f"Project name: {project}\nWhat the user wants: {description or '(no description given)'}\n\n"
        "Answer with: package_name (lowercase, hyphens), a one-sentence description, a README.md "
        "written for this project (a Markdown title, what it does, how to run it, next steps), and "
        f"config_values for the keys of {CONFIG_PATH} that should change (keys: {keys}).\n\n"
        f"The template's files:\n{shown}"
    )


def config_check(files: dict[str, str]) -> Callable[[Customization], None]:
    """A check that the plan only sets config keys the template has (a typo must not add keys)."""
    config = files.get(CONFIG_PATH)
    known = set(json.loads(config)) if config else set()

    def check(plan: Customization) -> None:
        unknown = sorted({v.key for v in plan.config_values} - known)
        if unknown:
            raise ValueError(f"config_values names keys the template does not have: {', '.join(unknown)}")

    return check


def apply(
    plan: Customization, files: dict[str, str], template_name: str, task_trailer: str
) -> tuple[dict[str, str], str]:
    """The files to write (path → new content) and the commit message."""
    changed: dict[str, str] = {"README.md": plan.readme.rstrip() + "\n"}
    config = files.get(CONFIG_PATH)
    if config is not None:
        values = json.loads(config)
        for item in plan.config_values:
            current = values.get(item.key)
            values[item.key] = _typed(item.value, current)
        changed[CONFIG_PATH] = json.dumps(values, indent=2) + "\n"
    if "pyproject.toml" in files:
        text = re.sub(r'(?m)^name = ".*"$', f'name = "{plan.package_name}"', files["pyproject.toml"], count=1)
        text = re.sub(r'(?m)^description = ".*"$', f"description = {json.dumps(plan.description)}", text, count=1)
        changed["pyproject.toml"] = text
    # The template's own name elsewhere (app names, page titles) becomes the project's.
    for path, content in files.items():
        if path not in changed and template_name in content:
            changed[path] = content.replace(template_name, plan.package_name)
    changed = {p: c for p, c in changed.items() if files.get(p) != c}
    message = f"Customize the template for {plan.package_name}\n\n{plan.description}\n\n{task_trailer}\n"
    return changed, message


def _typed(raw: str, current: object) -> object:
    """Keep the config value's JSON type (a port stays a number)."""
    if isinstance(current, bool):
        return raw.strip().lower() in ("true", "1", "yes")
    if isinstance(current, int):
        try:
            return int(raw)
        except ValueError:
            return current
    return raw


def issues_prompt(project: str, description: str, repo: str, readme: str | None) -> str:
    return (
        f"Plan the first GitHub issues of the new project {project} ({repo}).\n"
        f"What the user wants: {description or '(no description given)'}\n"
        f"Its README:\n{(readme or '')[:PROMPT_FILE_CHARS]}\n\n"
        "Answer with 3 to 7 issues specific to this project (not generic chores): a short title, a body "
        "with the goal and acceptance criteria in Markdown, and up to 4 lowercase labels."
    )


__all__ = ["IssuePlan", "apply", "config_check", "customization_prompt", "issues_prompt"]
