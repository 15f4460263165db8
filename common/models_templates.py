"""GET /api/v1/templates: the template repositories a user may plant from."""

from __future__ import annotations

from pydantic import Field

from common.models import Model


class Template(Model):
    name: str = Field(description="owner/repo on GitHub")
    description: str
    default: bool


class TemplateList(Model):
    templates: list[Template]
