"""Building the live provider from the settings, once per process (the App's token cache lives here)."""

from __future__ import annotations

import functools

from common.config import Settings, get_settings
from common.github.access import AppAccess, GitHubAccess, TokenAccess
from common.github.app_auth import AppAuth
from common.providers.ai_plans import AIAnswerer
from common.providers.live import LiveConfig, LiveProvider


def build(settings: Settings) -> LiveProvider:
    github: GitHubAccess
    if settings.github_app_id and settings.github_app_private_key:
        github = AppAccess(AppAuth(settings.github_api_url, settings.github_app_id, settings.github_app_private_key))
    else:
        github = TokenAccess(settings.github_api_url, settings.github_token)

    def ai() -> AIAnswerer:
        from common.providers.gemini_rest import GeminiAnswerer

        return GeminiAnswerer(
            settings.ai_base_url or "https://generativelanguage.googleapis.com", settings.ai_model, settings.ai_api_key
        )

    config = LiveConfig(
        planter_org=settings.github_org,
        templates=settings.github_templates,
        app_install_url=settings.github_app_install_url,
    )
    return LiveProvider(config=config, github=github, ai=ai)


@functools.cache
def live_provider() -> LiveProvider:
    return build(get_settings())
