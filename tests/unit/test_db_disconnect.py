"""Which driver errors count as "the database is not there" (→ 503 and a retry, not a 500)."""

from __future__ import annotations

import pg8000.dbapi
import pytest
from sqlalchemy import exc as sa_exc

from common.db import is_disconnect


def wrapped(kind: type[sa_exc.DBAPIError], code: str, message: str) -> sa_exc.DBAPIError:
    orig = pg8000.dbapi.ProgrammingError({"S": "FATAL", "C": code, "M": message})
    return kind("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("57P03", "the database system is shutting down"),
        ("57P03", "the database system is starting up"),
        ("57P01", "terminating connection due to administrator command"),
        ("57P02", "terminating connection due to crash of another server process"),
        ("08006", "connection failure"),
        ("53300", "sorry, too many clients already"),
    ],
)
def test_a_server_going_away_is_a_disconnect(code: str, message: str) -> None:
    assert is_disconnect(wrapped(sa_exc.ProgrammingError, code, message))
    assert is_disconnect(wrapped(sa_exc.DatabaseError, code, message))


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("42P01", 'relation "nope" does not exist'),
        ("23505", "duplicate key value violates unique constraint"),
        ("40P01", "deadlock detected"),
    ],
)
def test_a_query_error_is_not(code: str, message: str) -> None:
    assert not is_disconnect(wrapped(sa_exc.ProgrammingError, code, message))
