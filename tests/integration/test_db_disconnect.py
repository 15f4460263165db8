"""A connection cut in the middle of a transaction (a PostgreSQL restart, a failover, a killed
backend) is a disconnect the caller can act on: retried once, then DatabaseUnavailable (503 with
Retry-After), never an error of SQLAlchemy's own bookkeeping (a 500) — and the next call works."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from common import db
from common.errors import DatabaseUnavailable
from tests.conftest import DEAD_DATABASE


def terminate(admin: sa.Engine, pid: int) -> None:
    """Cut one backend from another session, as a restart cuts every backend."""
    with admin.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar() is True


class CutMidTransaction:
    """Work that reads inside the transaction, has its backend terminated, then reads again:
    the second statement finds the socket closed ("network error"), which invalidates the
    connection while SQLAlchemy still counts its transaction as open."""

    def __init__(self, admin: sa.Engine, cuts: int) -> None:
        self.admin = admin
        self.cuts_left = cuts
        self.calls = 0

    def __call__(self, conn: sa.Connection) -> int:
        self.calls += 1
        pid = int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
        if self.cuts_left:
            self.cuts_left -= 1
            terminate(self.admin, pid)
        return int(conn.execute(sa.text("SELECT 41 + 1")).scalar_one())


@pytest.fixture
def admin(database_url: str) -> Any:
    engine = sa.create_engine(database_url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def test_a_connection_cut_mid_transaction_is_retried_on_a_fresh_one(engine: sa.Engine, admin: sa.Engine) -> None:
    work = CutMidTransaction(admin, cuts=1)
    assert db.run_in_transaction(work, engine=engine) == 42
    assert work.calls == 2


def test_a_connection_cut_on_every_attempt_is_database_unavailable(engine: sa.Engine, admin: sa.Engine) -> None:
    work = CutMidTransaction(admin, cuts=2)
    with pytest.raises(DatabaseUnavailable) as raised:
        db.run_in_transaction(work, engine=engine)
    assert raised.value.status == 503
    assert int(raised.value.headers["Retry-After"]) > 0
    assert work.calls == 2
    # The pool is usable again straight away: no connection is left holding a half-rolled-back state.
    assert db.run_in_transaction(lambda conn: conn.execute(sa.text("SELECT 7")).scalar_one(), engine=engine) == 7
    assert db.run_statement(lambda conn: conn.execute(sa.text("SELECT 8")).scalar_one(), engine=engine) == 8


def test_a_pooled_connection_cut_between_requests_is_not_seen_by_the_next(engine: sa.Engine, admin: sa.Engine) -> None:
    # Several rounds: a killed backend surfaces either as its FATAL message (SQLSTATE 57P01, which
    # SQLAlchemy alone would not count as a disconnect, handing the dead connection back to the pool
    # for the retry to find) or as a broken socket, depending on timing. The pause lets the FATAL arrive.
    for _ in range(5):
        pid = db.run_in_transaction(
            lambda conn: int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()), engine=engine
        )
        terminate(admin, pid)  # the pool still holds this connection, now dead
        time.sleep(0.05)
        assert db.run_in_transaction(lambda conn: conn.execute(sa.text("SELECT 9")).scalar_one(), engine=engine) == 9


def test_the_servers_error_fields_are_read_from_a_real_pg8000_error(engine: sa.Engine) -> None:
    # What the disconnect check (SQLSTATE) and the dashboard's unknown-zone check (SQLSTATE and
    # message) read, from one place: here from an error PostgreSQL really sent.
    with pytest.raises(sa_exc.DBAPIError) as raised, engine.connect() as conn:
        conn.execute(sa.text("SELECT now() AT TIME ZONE 'Nowhere/Atlantis'"))
    fields = db.server_error_fields(raised.value)
    assert fields["C"] == "22023"
    assert "time zone" in fields["M"]
    assert not db.is_disconnect(raised.value)
    client_side = sa_exc.InterfaceError("SELECT 1", {}, Exception("network error"))
    assert db.server_error_fields(client_side) == {}
    assert db.is_disconnect(client_side)


# --- a prepared statement alone (db.run_prepared): the same endings without a SQLAlchemy Connection ---

_PID = "SELECT pg_backend_pid() AS pid"


def checked_out(engine: sa.Engine) -> int:
    """Connections not back in the pool (none may be left out, whatever the ending)."""
    pool = engine.pool
    assert isinstance(pool, sa.QueuePool)
    return pool.checkedout()


def test_a_prepared_statement_on_a_cut_pooled_connection_is_retried_on_a_fresh_one(
    engine: sa.Engine, admin: sa.Engine
) -> None:
    for _ in range(5):  # the FATAL message or a broken socket, whichever arrives (see above)
        (first,) = db.run_prepared(_PID, {}, engine=engine)
        terminate(admin, first["pid"])  # the pool's one connection, now dead
        time.sleep(0.05)
        (second,) = db.run_prepared(_PID, {}, engine=engine)
        assert second["pid"] != first["pid"]
    assert checked_out(engine) == 0


def test_a_prepared_statement_cut_on_every_attempt_is_database_unavailable(engine: sa.Engine) -> None:
    with pytest.raises(DatabaseUnavailable) as raised:  # the statement ends its own backend, twice
        db.run_prepared("SELECT pg_terminate_backend(pg_backend_pid()) AS gone", {}, engine=engine)
    assert int(raised.value.headers["Retry-After"]) > 0
    assert checked_out(engine) == 0
    assert db.run_prepared("SELECT CAST(:n AS int) + 1 AS n", {"n": 6}, engine=engine) == [{"n": 7}]


def test_a_server_error_of_a_prepared_statement_is_a_dbapi_error_and_keeps_the_connection(engine: sa.Engine) -> None:
    (before,) = db.run_prepared(_PID, {}, engine=engine)
    with pytest.raises(sa_exc.DBAPIError) as raised:
        db.run_prepared("SELECT now() AT TIME ZONE CAST(:tz AS text) AS t", {"tz": "Nowhere/Atlantis"}, engine=engine)
    assert db.server_error_fields(raised.value)["C"] == "22023"
    assert not db.is_disconnect(raised.value)
    assert db.run_prepared(_PID, {}, engine=engine) == [before]  # the same connection, back in the pool
    assert checked_out(engine) == 0


def test_a_prepared_statement_without_a_server_is_database_unavailable(settings: Any) -> None:
    dead = db.create_engine(dataclasses.replace(settings, database_url=DEAD_DATABASE))
    try:
        with pytest.raises(DatabaseUnavailable):
            db.run_prepared(_PID, {}, engine=dead)
    finally:
        dead.dispose()
