"""Database operations of a deployment: the one-time bootstrap, and migrations on every build.

    # Once, by a human, as the built-in `postgres` user (password prompted, never stored):
    python -m deploy.database bootstrap --instance P:R:I --user postgres \
        --deployer planter-deployer@P.iam --runtime planter-runtime@P.iam

    # Every build (cloudbuild.yaml), as the build's service account with IAM database auth:
    python -m deploy.database migrate --instance P:R:I --user planter-deployer@P.iam --iam-auth \
        --grant-to planter-runtime@P.iam

Both reach Cloud SQL through the Cloud SQL Python Connector (no proxy, no IP allow-list), with
the engine of common/db.py; ``--database-url`` runs them against any PostgreSQL instead (tests).

Roles: the deployer owns the schema's tables (it runs the migrations); the runtime account
only reads and writes rows (no DDL), and gets that on every table the deployer creates, now
and later. When the database is at a revision this code does not know, the database is ahead
of the code: a rollback to an earlier commit. Migrations are written to be compatible with the
previous release (expand, then contract a release later), so the build leaves the schema alone
instead of failing; see docs/DEPLOY.md.
"""

from __future__ import annotations

import argparse
import getpass
import os
import pathlib
import sys
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import postgresql

from common import db
from common.config import Settings

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Two builds that migrate at once take turns (any constant works; this one spells "planter").
_MIGRATION_LOCK_KEY = 0x706C616E746572
_ALEMBIC_TABLE = "alembic_version"
_PREPARER = postgresql.dialect().identifier_preparer  # type: ignore[no-untyped-call]


def log(message: str) -> None:
    print(f"[deploy.database] {message}", file=sys.stderr, flush=True)


def alembic_config() -> Config:
    return Config(str(ROOT / "alembic.ini"))


def quote(name: str) -> str:
    """A role or database name as an SQL identifier (IAM user names hold '@' and '.')."""
    return _PREPARER.quote_identifier(name)


def require_role(conn: sa.Connection, role: str) -> None:
    if conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first() is None:
        raise SystemExit(
            f"database role {role!r} does not exist: create the IAM database user first "
            "(gcloud sql users create ... --type=cloud_iam_service_account, docs/DEPLOY.md)"
        )


def bootstrap_statements(database: str, deployer: str, runtime: str) -> list[str]:
    """What the `postgres` user grants once: the deployer may create tables, the runtime may not."""
    d, r = quote(deployer), quote(runtime)
    return [
        f"GRANT CONNECT, TEMPORARY ON DATABASE {quote(database)} TO {d}, {r}",
        f"GRANT USAGE, CREATE ON SCHEMA public TO {d}",
        f"GRANT USAGE ON SCHEMA public TO {r}",
    ]


def runtime_grant_statements(runtime: str) -> list[str]:
    """Row access for the runtime account on the deployer's tables, present and future."""
    r = quote(runtime)
    return [
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {r}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {r}",
        f"REVOKE ALL ON TABLE {_ALEMBIC_TABLE} FROM {r}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {r}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {r}",
    ]


def bootstrap(engine: sa.Engine, database: str, deployer: str, runtime: str) -> None:
    with engine.begin() as conn:
        for role in (deployer, runtime):
            require_role(conn, role)
        for statement in bootstrap_statements(database, deployer, runtime):
            conn.execute(sa.text(statement))
    log(f"granted schema rights: {deployer} creates tables, {runtime} uses them")


def migrate(engine: sa.Engine, grant_to: str | None = None) -> str:
    """Upgrade to head (unless the database is ahead of this code), then grant row access.

    Returns what happened: "upgraded" or "ahead".
    """
    config = alembic_config()
    known = {rev.revision for rev in ScriptDirectory.from_config(config).walk_revisions()}
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
        current = MigrationContext.configure(conn).get_current_heads()
        unknown = sorted(set(current) - known)
        if unknown:
            outcome = "ahead"
            log(f"the database is at {', '.join(unknown)}, newer than this code: a rollback; schema left as is")
        else:
            outcome = "upgraded"
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            log(f"migrated from {', '.join(current) or 'an empty database'} to head")
        if grant_to:
            require_role(conn, grant_to)
            for statement in runtime_grant_statements(grant_to):
                conn.execute(sa.text(statement))
            log(f"granted row access to {grant_to}")
    return outcome


def make_engine(args: argparse.Namespace, password: str = "") -> sa.Engine:
    """The connector engine of common/db.py (or a plain URL), sized for one admin connection."""
    if args.database_url:
        return sa.create_engine(args.database_url, pool_size=1, max_overflow=0)
    if not (args.instance and args.user):
        raise SystemExit("give --instance and --user (or --database-url)")
    settings = Settings(
        environment="production",
        instance_connection_name=args.instance,
        db_user=args.user,
        db_password=password,
        db_name=args.database,
        db_iam_auth=args.iam_auth,
        db_ip_type=args.ip_type,
        db_pool_size=1,
        db_max_overflow=0,
    )
    return db.create_engine(settings, autocommit=False)


def _close(engine: sa.Engine) -> None:
    engine.dispose()
    connector = getattr(db, "_connector", None)
    if connector is not None:
        connector.close()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m deploy.database", description=__doc__.splitlines()[0] if __doc__ else ""
    )
    sub = p.add_subparsers(dest="action", required=True)
    for name in ("migrate", "bootstrap"):
        s = sub.add_parser(name)
        s.add_argument("--instance", default=os.environ.get("INSTANCE_CONNECTION_NAME", ""), help="PROJECT:REGION:NAME")
        s.add_argument("--user", default=os.environ.get("DB_USER", ""))
        s.add_argument("--database", default=os.environ.get("DB_NAME", "planter"))
        s.add_argument(
            "--ip-type", default=os.environ.get("DB_IP_TYPE", "public"), choices=("public", "private", "psc")
        )
        s.add_argument("--iam-auth", action="store_true", help="log in with the caller's IAM identity")
        s.add_argument("--database-url", default="", help="a SQLAlchemy URL instead of Cloud SQL (tests)")
    sub.choices["migrate"].add_argument("--grant-to", default="", help="the runtime's database role")
    boot = sub.choices["bootstrap"]
    boot.add_argument("--deployer", required=True, help="the build account's IAM database user")
    boot.add_argument("--runtime", required=True, help="the functions' IAM database user")
    boot.add_argument("--print-sql", action="store_true", help="print the statements (for Cloud SQL Studio)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.action == "bootstrap" and args.print_sql:
        for statement in bootstrap_statements(args.database, args.deployer, args.runtime):
            print(f"{statement};")
        return 0
    password = ""
    if args.action == "bootstrap" and not args.iam_auth and not args.database_url:
        # Typed, or handed over in the environment for this one process; never a flag (shell history).
        password = os.environ.get("DB_PASSWORD") or getpass.getpass(f"password of database user {args.user}: ")
    engine = make_engine(args, password)
    try:
        if args.action == "migrate":
            migrate(engine, args.grant_to or None)
        else:
            bootstrap(engine, args.database, args.deployer, args.runtime)
    finally:
        _close(engine)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
