"""Building the live provider from the settings, once per process (the App's token cache lives here)."""

from __future__ import annotations

import functools

from common.ai import build_client
from common.config import Settings
from common.github.access import AppAccess, GitHubAccess, TokenAccess
from common.github.app_auth import AppAuth
from common.providers.live import LiveConfig, LiveProvider


def build(settings: Settings) -> LiveProvider:
    github: GitHubAccess
    if settings.github_app_id and settings.github_app_private_key:
        github = AppAccess(AppAuth(settings.github_api_url, settings.github_app_id, settings.github_app_private_key))
    else:
        github = TokenAccess(settings.github_api_url, settings.github_token)
    client = build_client(settings)  # cheap: google-genai is imported on the first AI call
    config = LiveConfig(
        planter_org=settings.github_org,
        templates=settings.github_templates,
        app_install_url=settings.github_app_install_url,
    )
    return LiveProvider(config=config, github=github, ai=lambda: client)


@functools.cache
def live_provider(settings: Settings) -> LiveProvider:
    """One provider per settings (frozen, so hashable): its token cache lives as long as the process."""
    return build(settings)
