from __future__ import annotations

import pytest

from common.config import DEV_JWT_SECRET, ConfigError, load_settings

STRONG = "x" * 40


def _production(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for key in (
        "DATABASE_URL",
        "INSTANCE_CONNECTION_NAME",
        "JWT_SECRET",
        "JWT_JWKS_URL",
        "STEP_SIGNING_SECRET",
        "STEP_PROVIDER",
        "GITHUB_APP_ID",
        "GITHUB_APP_PRIVATE_KEY",
        "GITHUB_TOKEN",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PLANTER_ENV", "production")
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_development_has_working_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTER_ENV", "development")
    monkeypatch.delenv("JWT_SECRET", raising=False)
    settings = load_settings()
    assert settings.jwt_secret == DEV_JWT_SECRET
    assert settings.max_body_bytes == 64 * 1024


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"JWT_SECRET": STRONG, "STEP_SIGNING_SECRET": STRONG}, "INSTANCE_CONNECTION_NAME"),
        ({"DATABASE_URL": "postgresql+pg8000://u@/db", "STEP_SIGNING_SECRET": STRONG}, "JWT_JWKS_URL"),
        ({"DATABASE_URL": "postgresql+pg8000://u@/db", "JWT_SECRET": STRONG}, "STEP_SIGNING_SECRET"),
        (
            {"DATABASE_URL": "postgresql+pg8000://u@/db", "JWT_SECRET": DEV_JWT_SECRET, "STEP_SIGNING_SECRET": STRONG},
            "JWT_SECRET",
        ),
        (
            {"DATABASE_URL": "postgresql+pg8000://u@/db", "JWT_SECRET": "short", "STEP_SIGNING_SECRET": STRONG},
            "JWT_SECRET",
        ),
        ({"INSTANCE_CONNECTION_NAME": "p:r:i", "JWT_SECRET": STRONG, "STEP_SIGNING_SECRET": STRONG}, "DB_USER"),
    ],
)
def test_production_refuses_missing_or_default_secrets(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], names: str
) -> None:
    _production(monkeypatch, **env)
    with pytest.raises(ConfigError, match=names):
        load_settings()


def test_production_starts_with_everything_set(monkeypatch: pytest.MonkeyPatch) -> None:
    _production(
        monkeypatch,
        INSTANCE_CONNECTION_NAME="proj:region:inst",
        DB_USER="planter-sa@proj.iam",
        DB_IAM_AUTH="true",
        JWT_JWKS_URL="https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com",
        STEP_SIGNING_SECRET=STRONG,
        GITHUB_APP_ID="12345",
        GITHUB_APP_PRIVATE_KEY="placeholder-for-the-pem",
    )
    settings = load_settings()
    assert settings.verify_oidc is True
    assert settings.db_iam_auth is True
    assert settings.step_provider == "live"  # the default everywhere


_PRODUCTION = {"DATABASE_URL": "postgresql+pg8000://u@/db", "JWT_SECRET": STRONG, "STEP_SIGNING_SECRET": STRONG}


def test_production_refuses_the_simulated_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    _production(monkeypatch, **_PRODUCTION, STEP_PROVIDER="simulated", GITHUB_TOKEN="placeholder")
    with pytest.raises(ConfigError, match="STEP_PROVIDER=simulated"):
        load_settings()


def test_production_live_needs_github_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    _production(monkeypatch, **_PRODUCTION, GITHUB_APP_ID="12345")
    with pytest.raises(ConfigError, match="GITHUB_APP_PRIVATE_KEY"):
        load_settings()


def test_development_defaults_to_live_and_keeps_simulated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTER_ENV", "development")
    monkeypatch.delenv("STEP_PROVIDER", raising=False)
    assert load_settings().step_provider == "live"
    monkeypatch.setenv("STEP_PROVIDER", "simulated")
    assert load_settings().step_provider == "simulated"
    monkeypatch.setenv("STEP_PROVIDER", "github")
    with pytest.raises(ConfigError, match="STEP_PROVIDER"):
        load_settings()


@pytest.mark.parametrize(("name", "value"), [("CORS_ORIGINS", "*"), ("DB_POOL_SIZE", "abc"), ("DB_IP_TYPE", "carrier")])
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv("PLANTER_ENV", "development")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()


def test_simulate_is_a_development_knob(monkeypatch: pytest.MonkeyPatch) -> None:
    everything = {
        "DATABASE_URL": "postgresql+pg8000://u@/db",
        "JWT_SECRET": STRONG,
        "STEP_SIGNING_SECRET": STRONG,
        "GITHUB_APP_ID": "12345",
        "GITHUB_APP_PRIVATE_KEY": "placeholder-for-the-pem",
    }
    _production(monkeypatch, **everything)
    monkeypatch.delenv("ALLOW_SIMULATE", raising=False)
    assert load_settings().allow_simulate is False
    monkeypatch.setenv("ALLOW_SIMULATE", "true")
    with pytest.raises(ConfigError, match="ALLOW_SIMULATE"):
        load_settings()
    monkeypatch.setenv("PLANTER_ENV", "development")
    monkeypatch.delenv("ALLOW_SIMULATE")
    settings = load_settings()
    assert settings.allow_simulate is True and settings.simulate_max_step_seconds == 60.0
