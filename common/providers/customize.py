"""The prompts of both AI steps, the repairs of their answers, and the customization's files."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from common.providers.ai_plans import Customization

CONFIG_PATH = "config/settings.json"
MAX_SETTING_CHARS = 60
PROMPT_FILE_CHARS = 4000  # per file shown to the model; enough for a template's small files


def config_values(files: dict[str, str]) -> dict[str, Any]:
    config = files.get(CONFIG_PATH)
    return dict(json.loads(config)) if config else {}


def customization_prompt(project: str, description: str, template: str, files: dict[str, str]) -> str:
    shown = "\n\n".join(f"--- {path} ---\n{content[:PROMPT_FILE_CHARS]}" for path, content in sorted(files.items()))
    return (
        f"You customize the template repository {template} for the new project {project}.\n"
        f"What the user wants: {description or '(no description given)'}\n"
        "Answer with a one-sentence description of the project, a README.md written for it (a Markdown "
        "title, what it does, how to run it, next steps), and new values for the keys of "
        f"{CONFIG_PATH} that should change for this project.\n\n"
        f"The template's files:\n{shown}"
    )


def customization_check(project: str, current: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Repairs of an answer: a README without a title gets the project's; config keys the
    template does not have are refused (a typo must not add settings nobody reads); a value
    that is no setting for its key is dropped, and the template's value stays."""

    def check(raw: dict[str, Any]) -> dict[str, Any]:
        answer = dict(raw)
        readme = str(answer.get("readme") or "")
        if readme.strip() and not readme.lstrip().startswith("#"):
            answer["readme"] = f"# {project}\n\n{readme.strip()}\n"
        config = answer.get("config") or {}
        unknown = sorted(set(config) - set(current))
        if unknown:
            raise ValueError(f"config names keys the template does not have: {', '.join(unknown)}")
        answer["config"] = {k: v for k, v in config.items() if isinstance(v, str) and _is_setting(v, current[k])}
        return answer

    return check


def _is_setting(value: str, current: object) -> bool:
    """A setting is one short line (not a paragraph, not a file); one that is a single word in the
    template (a level, a region, a name) stays a single word ("--- Dockerfile ---" is no log level)."""
    text = value.strip()
    if not 0 < len(text) <= MAX_SETTING_CHARS or "\n" in text:
        return False
    one_word = isinstance(current, str) and bool(current.strip()) and len(current.split()) == 1
    return not one_word or len(text.split()) == 1


def apply(
    plan: Customization, files: dict[str, str], template_name: str, package: str, trailer: str
) -> tuple[dict[str, str], str]:
    """The files to write (path → new content, only those that change) and the commit message."""
    changed: dict[str, str] = {"README.md": plan.readme.rstrip() + "\n"}
    config = files.get(CONFIG_PATH)
    if config is not None:
        values = json.loads(config)
        for key, value in plan.config.items():
            values[key] = _typed(value, values.get(key))
        for key, value in values.items():
            if isinstance(value, str) and template_name in value:
                values[key] = value.replace(template_name, package)
        changed[CONFIG_PATH] = json.dumps(values, indent=2) + "\n"
    if "pyproject.toml" in files:
        text = re.sub(r'(?m)^name = ".*"$', f'name = "{package}"', files["pyproject.toml"], count=1)
        text = re.sub(r'(?m)^description = ".*"$', f"description = {json.dumps(plan.description)}", text, count=1)
        changed["pyproject.toml"] = text
    # The template's own name elsewhere (app names, page titles) becomes the project's.
    for path, content in files.items():
        if path not in changed and template_name in content:
            changed[path] = content.replace(template_name, package)
    changed = {p: c for p, c in changed.items() if files.get(p) != c}
    message = f"Customize the template for {package}\n\n{plan.description}\n\n{trailer}\n"
    return changed, message


def _typed(raw: str, current: object) -> object:
    """Keep the config value's JSON type: a port stays a number (an answer that is not one is ignored)."""
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
        "Answer with 3 to 7 issues specific to this project (not generic chores): a short title, a body "
        "with the goal and acceptance criteria in Markdown, and up to 4 lowercase labels.\n\n"
        f"The project's README, for what it is meant to do:\n{(readme or '')[:PROMPT_FILE_CHARS]}"
    )
