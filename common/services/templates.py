"""The configured template repositories, and the checks of a project's GitHub choices."""

from __future__ import annotations

from common.config import Settings
from common.errors import ValidationFailed
from common.models import CreateProject
from common.models_templates import Template, TemplateList


def list_templates(settings: Settings) -> TemplateList:
    """GITHUB_TEMPLATES entries are `owner/repo` or `owner/repo=description`; the first is the default."""
    found = []
    for i, entry in enumerate(settings.github_templates):
        name, _, description = entry.partition("=")
        found.append(
            Template(name=name.strip(), description=description.strip() or f"Template {name.strip()}", default=i == 0)
        )
    return TemplateList(templates=found)


def github_choices(settings: Settings, body: CreateProject) -> dict[str, object]:
    """The payload fields the live provider reads; 422 naming the field for a choice it cannot honour."""
    names = [t.name for t in list_templates(settings).templates]
    template = body.template or names[0]
    if template not in names:
        raise ValidationFailed(
            f"unknown template {template!r}", errors={"template": f"one of: {', '.join(names)} (GET /api/v1/templates)"}
        )
    # The simulated provider plants nothing, so it needs no organization (the fault run's tasks).
    if body.mode == "user" and not body.github_owner and settings.step_provider == "live":
        raise ValidationFailed(
            "mode user plants into your own organization: name it",
            errors={"github_owner": "required in mode user: the organization where Planter's GitHub App is installed"},
        )
    if body.mode == "saas" and body.github_owner and body.github_owner.lower() != settings.github_org.lower():
        raise ValidationFailed(
            "mode saas plants into Planter's organization",
            errors={"github_owner": f"in mode saas it can only be {settings.github_org}; use mode user for yours"},
        )
    owner = body.github_owner if body.mode == "user" else settings.github_org
    return {"template": template, "github_owner": owner, "private": body.private}
