"""A connection cut in the middle of a transaction (what a PostgreSQL restart does to every open
one) is retried on a new connection, not answered 500."""

from __future__ import annotations

import sqlalchemy as sa

from common import db


def test_a_transaction_whose_connection_is_cut_is_retried(engine: sa.Engine) -> None:
    """Found by the fault run on the concurrent queue stand-in: after the cut, the ROLLBACK raised
    PendingRollbackError, which hid the disconnect from the retry and surfaced as a 500."""
    calls: list[int] = []

    def work(conn: sa.Connection) -> int:
        calls.append(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        if len(calls) == 1:
            # A second connection terminates this one, as a server restart would, mid-transaction.
            with sa.create_engine(engine.url, poolclass=sa.NullPool).connect() as killer:
                killer.exec_driver_sql(f"SELECT pg_terminate_backend({calls[0]})")
            conn.exec_driver_sql("SELECT 1")
        return 42

    assert db.run_in_transaction(work, engine=engine) == 42
    assert len(calls) == 2 and calls[0] != calls[1]
