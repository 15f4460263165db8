"""Alembic environment: the engine comes from common.db, so migrations reach Cloud SQL through
the connector in production and DATABASE_URL locally, with no credentials in alembic.ini."""

from __future__ import annotations

from alembic import context

from common.config import load_settings
from common.db import create_engine
from common.tables import metadata

target_metadata = metadata


def run_migrations_online() -> None:
    connectable = context.config.attributes.get("connection")
    if connectable is not None:
        context.configure(connection=connectable, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    # A transactional engine of its own: the application's engine runs in autocommit mode.
    engine = create_engine(load_settings(), autocommit=False)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run against a database")
run_migrations_online()
