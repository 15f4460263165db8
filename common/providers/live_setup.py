"""Building the live provider from the settings, once per runtime (the App's token cache lives here)."""

from __future__ import annotations

from collections.abc import Callable

from common.ai import build_client
from common.config import Settings
from common.gcp.client import GcpClient, adc_token
from common.github.access import AppAccess, GitHubAccess, TokenAccess
from common.github.app_auth import AppAuth
from common.providers.live import LiveConfig, LiveProvider
from common.providers.live_gcp import GcpConfig, GcpSteps


def build(settings: Settings, clock: Callable[[], float]) -> LiveProvider:
    """The live provider; ``clock`` (the runtime's) dates the App's tokens and rate-limit waits."""
    github: GitHubAccess
    if settings.github_app_id and settings.github_app_private_key:
        key = settings.github_app_private_key
        github = AppAccess(AppAuth(settings.github_api_url, settings.github_app_id, key, clock=clock))
    else:
        github = TokenAccess(settings.github_api_url, settings.github_token)
    client = build_client(settings)  # cheap: google-genai is imported on the first AI call
    config = LiveConfig(
        planter_org=settings.github_org,
        templates=settings.github_templates,
        app_install_url=settings.github_app_install_url,
        # All three: a build needs a public address to post its progress to (the API's, not STEP_URL's).
        gcp_configured=bool(settings.gcp_parent and settings.gcp_billing_account and settings.callback_base_url),
    )
    gcp = gcp_steps(settings) if config.gcp_configured else None
    return LiveProvider(config=config, github=github, ai=lambda: client, gcp=gcp)


def gcp_steps(settings: Settings) -> GcpSteps:
    """The Google Cloud steps: anonymous against a stand-in (GCP_API_URL), the service account's ADC otherwise."""
    config = GcpConfig(
        parent=settings.gcp_parent,
        billing_account=settings.gcp_billing_account,
        region=settings.gcp_region,
        callback_base_url=settings.callback_base_url,
        check_after_seconds=settings.gcp_build_check_seconds,
    )
    token = (lambda: None) if settings.gcp_api_url else adc_token()
    return GcpSteps(config=config, gcp=GcpClient(base_url=settings.gcp_api_url, token=token))
