"""Settings read once from the environment into a frozen object; bad config fails fast."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

# Development-only placeholders: refused at start-up outside development (see _validate).
DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789"  # noqa: S105
DEV_STEP_SECRET = "dev-only-step-secret-change-me-0123456789"  # noqa: S105
_DEV_SECRETS = {DEV_JWT_SECRET, DEV_STEP_SECRET}
_MIN_SECRET_BYTES = 32


class ConfigError(RuntimeError):
    """The environment does not describe a runnable configuration."""


@dataclass(frozen=True)
class _Environment:
    """Typed reads of one environment mapping (os.environ in production, a dict in tests)."""

    values: Mapping[str, str]

    def text(self, name: str, default: str = "") -> str:
        return self.values.get(name, default).strip()

    def integer(self, name: str, default: int) -> int:
        raw = self.text(name)
        try:
            return int(raw) if raw else default
        except ValueError as exc:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc

    def number(self, name: str, default: float) -> float:
        raw = self.text(name)
        try:
            return float(raw) if raw else default
        except ValueError as exc:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from exc

    def csv(self, name: str) -> tuple[str, ...]:
        return tuple(x.strip() for x in self.text(name).split(",") if x.strip())

    def flag(self, name: str, default: bool) -> bool:
        raw = self.text(name).lower()
        if not raw:
            return default
        return raw in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Everything configurable, validated once per process."""

    environment: str = "development"
    # Database: a URL locally, the Cloud SQL connector in production.
    database_url: str = ""
    instance_connection_name: str = ""
    db_user: str = ""
    db_password: str = ""
    db_name: str = "planter"
    db_iam_auth: bool = False
    db_ip_type: str = "public"
    db_pool_size: int = 4
    db_max_overflow: int = 0
    # Auth.
    jwt_secret: str = ""
    jwt_jwks_url: str = ""
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_leeway_seconds: int = 30
    step_signing_secret: str = ""
    # Cloud Tasks.
    tasks_project: str = "planter-local"
    tasks_location: str = "us-central1"
    tasks_queue: str = "planter-steps"
    # Empty: Cloud Tasks itself; an URL (e.g. http://127.0.0.1:PORT): another endpoint, the local stand-in.
    tasks_endpoint: str = ""
    # One queue per task priority (see queue_names); tasks_queue is the normal one.
    tasks_queue_high: str = "planter-steps-high"
    tasks_queue_low: str = "planter-steps-low"
    step_url: str = "http://127.0.0.1:8080/internal/steps"
    oidc_service_account: str = ""
    oidc_audience: str = ""
    verify_oidc: bool = False
    # Pipeline.
    step_provider: str = "live"
    step_timeout_seconds: float | None = None
    redelivery_grace_seconds: float = 60.0
    callback_token_ttl_seconds: int = 6 * 3600
    # HTTP.
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    max_body_bytes: int = 64 * 1024
    # Money.
    cost_per_ai_operation: float = 0.05
    # The AI service (common.ai): Gemini on Vertex AI; locally a stand-in at ai_base_url.
    ai_model: str = "gemini-2.5-flash"
    ai_project: str = ""
    ai_location: str = "us-central1"
    ai_base_url: str = ""
    ai_api_key: str = ""
    ai_timeout_seconds: float = 30.0
    # GitHub (the live provider): the App in production, one token locally (docs/DEPLOY.md).
    github_api_url: str = "https://api.github.com"
    github_token: str = ""
    github_app_id: str = ""
    github_app_private_key: str = ""
    github_app_install_url: str = "https://github.com/apps/planter/installations/new"
    github_org: str = "planter-projects"
    github_templates: tuple[str, ...] = ("planter-templates/python-service",)
    # Local stand-ins in use (name=base URL, comma-separated), listed by /healthz.
    standins: tuple[str, ...] = field(default_factory=tuple)
    # Live updates (docs/DESIGN.md "Live updates"): how often an open stream reads the history,
    # how often it sends a heartbeat, how long it lives, and how long a stream token lasts.
    events_poll_seconds: float = 0.25
    events_heartbeat_seconds: float = 10.0
    events_stream_seconds: float = 50.0
    events_retry_ms: int = 1000
    stream_token_ttl_seconds: int = 300
    # The request's `simulate` knobs: development only (refused at start-up elsewhere), and capped.
    allow_simulate: bool = True
    simulate_max_step_seconds: float = 60.0
    # Google Cloud steps (issue 15): configured when parent, billing account and callback base are set.
    gcp_parent: str = ""
    gcp_billing_account: str = ""
    gcp_region: str = "us-central1"
    gcp_api_url: str = ""  # one base URL for every Google API (the local stand-in); "" → Google's hosts
    gcp_build_check_seconds: float = 30.0
    callback_base_url: str = ""  # Planter's API base as an outside worker (Cloud Build) reaches it

    @property
    def is_development(self) -> bool:
        return self.environment in {"development", "test"}

    @property
    def queue_path(self) -> str:
        return f"projects/{self.tasks_project}/locations/{self.tasks_location}/queues/{self.tasks_queue}"

    @property
    def queue_names(self) -> dict[str, str]:
        """The Cloud Tasks queue of each task priority: the one place that maps priority to queue."""
        return {"high": self.tasks_queue_high, "normal": self.tasks_queue, "low": self.tasks_queue_low}

    def queue_path_for(self, priority: str) -> str:
        name = self.queue_names.get(priority, self.tasks_queue)
        return f"projects/{self.tasks_project}/locations/{self.tasks_location}/queues/{name}"


def priority_queues(environ: Mapping[str, str]) -> dict[str, str]:
    """The Cloud Tasks queue of each task priority named by an environment: TASKS_QUEUE is the
    normal one; TASKS_QUEUE_HIGH and TASKS_QUEUE_LOW default to it + "-high" / "-low" (the names
    deploy/priority_queues.sh creates). The local stack reads the functions' environment with it."""
    normal = environ.get("TASKS_QUEUE", "").strip() or "planter-steps"
    return {
        "high": environ.get("TASKS_QUEUE_HIGH", "").strip() or f"{normal}-high",
        "normal": normal,
        "low": environ.get("TASKS_QUEUE_LOW", "").strip() or f"{normal}-low",
    }


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate an environment (the process's by default); raise ConfigError naming the
    variable at fault. Called once per instance, by the entry point."""
    env = _Environment(os.environ if environ is None else environ)
    environment = env.text("PLANTER_ENV", "development")
    dev = environment in {"development", "test"}
    timeout_raw = env.text("STEP_TIMEOUT_SECONDS")
    settings = Settings(
        environment=environment,
        database_url=env.text("DATABASE_URL"),
        instance_connection_name=env.text("INSTANCE_CONNECTION_NAME"),
        db_user=env.text("DB_USER"),
        db_password=env.text("DB_PASSWORD"),
        db_name=env.text("DB_NAME", "planter"),
        db_iam_auth=env.flag("DB_IAM_AUTH", False),
        db_ip_type=env.text("DB_IP_TYPE", "public").lower(),
        db_pool_size=env.integer("DB_POOL_SIZE", 4),
        db_max_overflow=env.integer("DB_MAX_OVERFLOW", 0),
        jwt_secret=env.text("JWT_SECRET", DEV_JWT_SECRET if dev else ""),
        jwt_jwks_url=env.text("JWT_JWKS_URL"),
        jwt_issuer=env.text("JWT_ISSUER"),
        jwt_audience=env.text("JWT_AUDIENCE"),
        jwt_leeway_seconds=env.integer("JWT_LEEWAY_SECONDS", 30),
        step_signing_secret=env.text("STEP_SIGNING_SECRET", DEV_STEP_SECRET if dev else ""),
        tasks_project=env.text("TASKS_PROJECT", "planter-local"),
        tasks_location=env.text("TASKS_LOCATION", "us-central1"),
        tasks_queue=env.text("TASKS_QUEUE", "planter-steps"),
        tasks_endpoint=env.text("CLOUD_TASKS_ENDPOINT"),
        tasks_queue_high=priority_queues(env.values)["high"],
        tasks_queue_low=priority_queues(env.values)["low"],
        step_url=env.text("STEP_URL", "http://127.0.0.1:8080/internal/steps"),
        oidc_service_account=env.text("TASKS_OIDC_SERVICE_ACCOUNT"),
        oidc_audience=env.text("TASKS_OIDC_AUDIENCE"),
        verify_oidc=env.flag("VERIFY_OIDC", not dev),
        step_provider=env.text("STEP_PROVIDER", "live"),
        step_timeout_seconds=float(timeout_raw) if timeout_raw else None,
        redelivery_grace_seconds=env.number("REDELIVERY_GRACE_SECONDS", 60.0),
        callback_token_ttl_seconds=env.integer("CALLBACK_TOKEN_TTL_SECONDS", 6 * 3600),
        cors_origins=tuple(o.strip() for o in env.text("CORS_ORIGINS").split(",") if o.strip()),
        max_body_bytes=env.integer("MAX_BODY_BYTES", 64 * 1024),
        cost_per_ai_operation=env.number("COST_PER_AI_OPERATION", 0.05),
        ai_model=env.text("GEMINI_MODEL", "gemini-2.5-flash"),
        ai_project=env.text("VERTEX_PROJECT", env.text("TASKS_PROJECT", "planter-local")),
        ai_location=env.text("VERTEX_LOCATION", "us-central1"),
        ai_base_url=env.text("GEMINI_BASE_URL"),
        ai_api_key=env.text("GEMINI_API_KEY"),
        ai_timeout_seconds=env.number("GEMINI_TIMEOUT_SECONDS", 30.0),
        github_api_url=env.text("GITHUB_API_URL", "https://api.github.com"),
        github_token=env.text("GITHUB_TOKEN"),
        github_app_id=env.text("GITHUB_APP_ID"),
        # A PEM from Secret Manager; "\n" escapes are accepted where a variable cannot hold newlines.
        github_app_private_key=env.text("GITHUB_APP_PRIVATE_KEY").replace("\\n", "\n"),
        github_app_install_url=env.text("GITHUB_APP_INSTALL_URL", "https://github.com/apps/planter/installations/new"),
        github_org=env.text("PLANTER_GITHUB_ORG", "planter-projects"),
        github_templates=env.csv("GITHUB_TEMPLATES") or ("planter-templates/python-service",),
        standins=env.csv("PLANTER_STANDINS"),
        events_poll_seconds=env.number("EVENTS_POLL_SECONDS", 0.25),
        events_heartbeat_seconds=env.number("EVENTS_HEARTBEAT_SECONDS", 10.0),
        events_stream_seconds=env.number("EVENTS_STREAM_SECONDS", 50.0),
        events_retry_ms=env.integer("EVENTS_RETRY_MS", 1000),
        stream_token_ttl_seconds=env.integer("STREAM_TOKEN_TTL_SECONDS", 300),
        allow_simulate=env.flag("ALLOW_SIMULATE", dev),
        simulate_max_step_seconds=env.number("SIMULATE_MAX_STEP_SECONDS", 60.0),
        gcp_parent=env.text("GCP_PROJECT_PARENT"),
        gcp_billing_account=env.text("GCP_BILLING_ACCOUNT"),
        gcp_region=env.text("GCP_REGION", "us-central1"),
        gcp_api_url=env.text("GCP_API_URL"),
        gcp_build_check_seconds=env.number("GCP_BUILD_CHECK_SECONDS", 30.0),
        callback_base_url=env.text("PLANTER_CALLBACK_BASE_URL"),
    )
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    if s.db_ip_type not in {"public", "private", "psc"}:
        raise ConfigError("DB_IP_TYPE must be public, private or psc")
    if s.max_body_bytes <= 0 or s.db_pool_size <= 0:
        raise ConfigError("MAX_BODY_BYTES and DB_POOL_SIZE must be positive")
    if not 0 < s.events_heartbeat_seconds <= 15 or not 0 < s.events_stream_seconds <= 60:
        raise ConfigError("EVENTS_HEARTBEAT_SECONDS must be in (0, 15] and EVENTS_STREAM_SECONDS in (0, 60]")
    if not 0 < s.stream_token_ttl_seconds <= 300 or s.events_poll_seconds <= 0:
        raise ConfigError("STREAM_TOKEN_TTL_SECONDS must be in (0, 300] and EVENTS_POLL_SECONDS positive")
    if "*" in s.cors_origins:
        raise ConfigError("CORS_ORIGINS must list origins; '*' is refused because tokens are sent")
    if s.step_provider not in {"live", "simulated"}:
        raise ConfigError("STEP_PROVIDER must be live or simulated")
    if any(t.partition("=")[0].strip().count("/") != 1 for t in s.github_templates):
        raise ConfigError("GITHUB_TEMPLATES must list owner/repo names (optionally =description), comma-separated")
    if s.simulate_max_step_seconds < 0:
        raise ConfigError("SIMULATE_MAX_STEP_SECONDS must not be negative")
    if s.is_development:
        return
    if s.allow_simulate:
        # Any user could otherwise make steps as slow as they like (issue 12): development only.
        raise ConfigError("ALLOW_SIMULATE is for development only; unset it outside development")
    if not s.database_url and not s.instance_connection_name:
        raise ConfigError("set INSTANCE_CONNECTION_NAME (Cloud SQL) or DATABASE_URL")
    if s.instance_connection_name and not s.db_user:
        raise ConfigError("DB_USER is required with INSTANCE_CONNECTION_NAME")
    if not s.jwt_secret and not s.jwt_jwks_url:
        raise ConfigError("set JWT_JWKS_URL or JWT_SECRET")
    for name, secret in (("JWT_SECRET", s.jwt_secret), ("STEP_SIGNING_SECRET", s.step_signing_secret)):
        if name == "JWT_SECRET" and not secret:
            continue
        if not secret or secret in _DEV_SECRETS or len(secret.encode()) < _MIN_SECRET_BYTES:
            raise ConfigError(f"{name} must be set to a random secret of at least {_MIN_SECRET_BYTES} bytes")
    if s.step_provider == "simulated":
        raise ConfigError("STEP_PROVIDER=simulated is for local fault-injection runs only; production runs live")
    if not (s.github_app_id and s.github_app_private_key) and not s.github_token:
        raise ConfigError("the live provider needs GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY (or GITHUB_TOKEN)")
