"""The embedded PostgreSQL (pgserver): start it, hand out pg8000 URLs, migrate."""

from __future__ import annotations

import pathlib
from typing import Any
from urllib.parse import parse_qs, urlparse

import sqlalchemy as sa


def start(data_dir: pathlib.Path) -> Any:
    """Start (or reuse) the embedded server whose data lives in ``data_dir``."""
    import pgserver  # dev-only dependency

    data_dir.mkdir(parents=True, exist_ok=True)
    return pgserver.get_server(  # type: ignore[attr-defined]
        str(data_dir), cleanup_mode="stop"
    )


def url(server: Any, database: str = "postgres") -> str:
    """A pg8000 SQLAlchemy URL over the server's unix socket (wherever pgserver put it)."""
    socket_dir = parse_qs(urlparse(server.get_uri()).query)["host"][0]
    return f"postgresql+pg8000://postgres@/{database}?unix_sock={socket_dir}/.s.PGSQL.5432"


def restart(server: Any) -> None:
    """Restart PostgreSQL in place (fast shutdown: open connections are cut, as in a failover)."""
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user, timeout=30)


def stop(server: Any) -> None:
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=30)


def create_database(admin_url: str, name: str, template: str | None = None) -> None:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if not exists:
                suffix = f" TEMPLATE {template}" if template else ""
                conn.execute(sa.text(f'CREATE DATABASE "{name}"{suffix}'))
    finally:
        engine.dispose()


def migrate(database_url: str, revision: str = "head") -> None:
    """Apply Alembic migrations to ``database_url`` (what the deploy does against Cloud SQL)."""
    from alembic import command
    from alembic.config import Config

    root = pathlib.Path(__file__).resolve().parent.parent
    config = Config(str(root / "alembic.ini"))
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    finally:
        engine.dispose()
