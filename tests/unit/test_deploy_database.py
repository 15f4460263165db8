"""deploy/database.py against the suite's PostgreSQL, with separate deployer and runtime roles as
on Cloud SQL: the one-time bootstrap, migrations, row grants for the runtime (present and future
tables), the rollback case, and the migrate step of cloudbuild.yaml."""

from __future__ import annotations

import os
from typing import Any

import pytest
import sqlalchemy as sa

from deploy import database
from dev import pg
from tests.unit import deploy_support as ds

# --- database: bootstrap, migrate, grants, rollback -------------------------------------------------


def _url_as(server: Any, role: str, name: str) -> str:
    return pg.url(server, name).replace("postgres@", f"{role}@", 1)


def test_bootstrap_migrate_and_runtime_grants_on_postgres(pg_server: Any) -> None:
    name = f"deploy_{os.getpid()}"
    deployer, runtime = "planter-deployer@demo-project.iam", "planter-runtime@demo-project.iam"
    admin = sa.create_engine(pg.url(pg_server), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        for role in (deployer, runtime):
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {database.quote(role)}"))
            conn.execute(sa.text(f"CREATE ROLE {database.quote(role)} LOGIN"))
    admin.dispose()
    pg.create_database(pg.url(pg_server), name)
    superuser = sa.create_engine(pg.url(pg_server, name))
    with superuser.begin() as conn:  # as on PostgreSQL 15+: nobody but the owner creates in public
        conn.execute(sa.text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))

    as_deployer = sa.create_engine(_url_as(pg_server, deployer, name))
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        database.migrate(as_deployer)  # before the bootstrap

    database.bootstrap(superuser, name, deployer, runtime)
    assert database.migrate(as_deployer, grant_to=runtime) == "upgraded"
    assert database.migrate(as_deployer, grant_to=runtime) == "upgraded"  # idempotent

    as_runtime = sa.create_engine(_url_as(pg_server, runtime, name))
    with as_runtime.begin() as conn:
        user_id = conn.execute(sa.text("INSERT INTO users (email) VALUES ('r@example.test') RETURNING id")).scalar()
        assert conn.execute(sa.text("SELECT count(*) FROM users WHERE id = :i"), {"i": user_id}).scalar() == 1
        conn.execute(sa.text("DELETE FROM users WHERE id = :i"), {"i": user_id})
    for statement in ("CREATE TABLE intruder (x int)", "DROP TABLE users", "SELECT * FROM alembic_version"):
        with (
            pytest.raises(sa.exc.ProgrammingError, match=r"permission denied|must be owner"),
            as_runtime.begin() as conn,
        ):
            conn.execute(sa.text(statement))

    # A table a later migration adds is usable by the runtime without another grant.
    with as_deployer.begin() as conn:
        conn.execute(sa.text("CREATE TABLE later_table (id bigint GENERATED ALWAYS AS IDENTITY, x int)"))
    with as_runtime.begin() as conn:
        conn.execute(sa.text("INSERT INTO later_table (x) VALUES (1)"))

    # A rollback build: the database is at a revision this code does not know.
    with as_deployer.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dfeed0000'"))
    assert database.migrate(as_deployer, grant_to=runtime) == "ahead"
    with as_deployer.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "f00dfeed0000"

    for engine in (as_deployer, as_runtime, superuser):
        engine.dispose()


def test_migrate_refuses_a_runtime_role_that_does_not_exist(pg_server: Any) -> None:
    name = f"deploy_missing_{os.getpid()}"
    pg.create_database(pg.url(pg_server), name)
    engine = sa.create_engine(pg.url(pg_server, name))
    with pytest.raises(SystemExit, match="does not exist"):
        database.migrate(engine, grant_to="nobody@demo-project.iam")
    engine.dispose()


def test_database_cli_prints_the_bootstrap_sql(capsys: pytest.CaptureFixture[str]) -> None:
    assert database.main(["bootstrap", "--print-sql", "--deployer=d@p.iam", "--runtime=r@p.iam"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"{s};" for s in database.bootstrap_statements("planter", "d@p.iam", "r@p.iam")]
    assert all('"d@p.iam"' in line or '"r@p.iam"' in line for line in printed)


def test_migrate_step_runs_the_database_module_through_the_connector() -> None:
    args = ds.step("migrate")["args"]
    assert args[:3] == ["-m", "deploy.database", "migrate"]
    assert "--iam-auth" in args and not [a for a in args if "password" in a.lower()]
    parsed = database.parser().parse_args([ds.substitute(a, ds.sample_substitutions()) for a in args[2:]])
    assert parsed.instance == "demo-project:us-central1:planter-db"
    assert parsed.user == "planter-deployer@demo-project.iam"
    assert parsed.grant_to == "planter-runtime@demo-project.iam"
    runtime_user = ds.env_vars(ds.deploy_steps()["api_tasks"])["DB_USER"]
    assert ds.substitute(runtime_user, ds.sample_substitutions()) == parsed.grant_to
