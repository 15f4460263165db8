from __future__ import annotations

import pytest

from common.config import DEV_JWT_SECRET, ConfigError, load_settings

STRONG = "x" * 40


def _production(**env: str) -> dict[str, str]:
    """A production environment with only ``env`` set (a dict: the process environment is never read)."""
    return {"PLANTER_ENV": "production", **env}


DEVELOPMENT = {"PLANTER_ENV": "development"}


def test_development_has_working_defaults() -> None:
    settings = load_settings(DEVELOPMENT)
    assert settings.jwt_secret == DEV_JWT_SECRET
    assert settings.max_body_bytes == 64 * 1024


def test_the_environment_is_read_from_the_mapping_given() -> None:
    assert load_settings({**DEVELOPMENT, "MAX_BODY_BYTES": "1000"}).max_body_bytes == 1000


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
def test_production_refuses_missing_or_default_secrets(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        load_settings(_production(**env))


def test_production_starts_with_everything_set() -> None:
    settings = load_settings(
        _production(
            INSTANCE_CONNECTION_NAME="proj:region:inst",
            DB_USER="planter-sa@proj.iam",
            DB_IAM_AUTH="true",
            JWT_JWKS_URL="https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com",
            STEP_SIGNING_SECRET=STRONG,
            GITHUB_APP_ID="12345",
            GITHUB_APP_PRIVATE_KEY="placeholder-for-the-pem",
        )
    )
    assert settings.verify_oidc is True
    assert settings.db_iam_auth is True
    assert settings.step_provider == "live"  # the default everywhere


_PRODUCTION = {"DATABASE_URL": "postgresql+pg8000://u@/db", "JWT_SECRET": STRONG, "STEP_SIGNING_SECRET": STRONG}


def test_production_refuses_the_simulated_provider() -> None:
    with pytest.raises(ConfigError, match="STEP_PROVIDER=simulated"):
        load_settings(_production(**_PRODUCTION, STEP_PROVIDER="simulated", GITHUB_TOKEN="placeholder"))


def test_production_live_needs_github_credentials() -> None:
    with pytest.raises(ConfigError, match="GITHUB_APP_PRIVATE_KEY"):
        load_settings(_production(**_PRODUCTION, GITHUB_APP_ID="12345"))


def test_development_defaults_to_live_and_keeps_simulated() -> None:
    assert load_settings(DEVELOPMENT).step_provider == "live"
    assert load_settings({**DEVELOPMENT, "STEP_PROVIDER": "simulated"}).step_provider == "simulated"
    with pytest.raises(ConfigError, match="STEP_PROVIDER"):
        load_settings({**DEVELOPMENT, "STEP_PROVIDER": "github"})


@pytest.mark.parametrize(("name", "value"), [("CORS_ORIGINS", "*"), ("DB_POOL_SIZE", "abc"), ("DB_IP_TYPE", "carrier")])
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({**DEVELOPMENT, name: value})


def test_simulate_is_a_development_knob() -> None:
    everything = {
        "DATABASE_URL": "postgresql+pg8000://u@/db",
        "JWT_SECRET": STRONG,
        "STEP_SIGNING_SECRET": STRONG,
        "GITHUB_APP_ID": "12345",
        "GITHUB_APP_PRIVATE_KEY": "placeholder-for-the-pem",
    }
    assert load_settings(_production(**everything)).allow_simulate is False
    with pytest.raises(ConfigError, match="ALLOW_SIMULATE"):
        load_settings(_production(**everything, ALLOW_SIMULATE="true"))
    settings = load_settings({**everything, **DEVELOPMENT})
    assert settings.allow_simulate is True and settings.simulate_max_step_seconds == 60.0
