"""The schema comes from Alembic alone, and it is exactly what common/tables.py declares."""

from __future__ import annotations

import pathlib
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from common.tables import metadata
from tests.factories import add_user

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _drift(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
        return list(compare_metadata(context, metadata))


def _alembic(engine: sa.Engine, action: str, revision: str) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        getattr(command, action)(config, revision)


def test_migrated_schema_matches_the_table_definitions(engine: sa.Engine) -> None:
    assert _drift(engine) == []


def test_downgrade_to_base_and_upgrade_again(engine: sa.Engine) -> None:
    _alembic(engine, "downgrade", "base")
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert tables <= {"alembic_version"}
    _alembic(engine, "upgrade", "head")
    assert _drift(engine) == []


def test_the_database_itself_refuses_broken_invariants(engine: sa.Engine) -> None:
    user_id = add_user(engine, "x@example.test").id
    bad_rows = [
        "INSERT INTO tasks (id, user_id, user_email, project_name, progress_percent)"
        " VALUES (gen_random_uuid(), :u, 'x@example.test', 'p', 101)",
        "INSERT INTO tasks (id, user_id, user_email, project_name, status)"
        " VALUES (gen_random_uuid(), :u, 'x@example.test', 'p', 'completed')",
        "INSERT INTO tasks (id, user_id, user_email, project_name, status)"
        " VALUES (gen_random_uuid(), :u, 'x@example.test', 'p', 'exploded')",
        "INSERT INTO subscriptions (user_id, tier) VALUES (:u, 'platinum')",
    ]
    for statement in bad_rows:
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(statement), {"u": user_id})
        except sa.exc.DBAPIError as error:  # pg8000 reports check violations as ProgrammingError
            assert "23514" in str(error.orig), error
            continue
        raise AssertionError(f"accepted: {statement}")
