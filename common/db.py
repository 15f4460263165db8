"""Building the SQLAlchemy engine (held by the runtime: common/runtime.py) and the one transaction helper.

Production reaches Cloud SQL through the Cloud SQL Python Connector with pg8000; development
and tests use a plain ``DATABASE_URL``. Driver errors that mean "the database is not there"
are translated here, once, into ``DatabaseUnavailable``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from common.config import Settings
from common.errors import DatabaseUnavailable

T = TypeVar("T")

# Pool sizing for serverless concurrency: one instance serves at most `concurrency` requests at
# once (gunicorn threads), each holding one connection for the length of a short transaction.
# pool_size + max_overflow = DB_POOL_SIZE + DB_MAX_OVERFLOW (4 + 0 by default) bounds what one
# instance can hold; max_instances x that must stay under the Cloud SQL connection limit
# (docs/DEPLOY.md does the arithmetic). No overflow: QueuePool closes an overflow connection as
# soon as it is returned, so under load every burst paid a new connection (1-3 per 100 requests,
# each a backend start and, through the connector, a TLS handshake: BENCHMARKS.md); the same cap
# as pool_size keeps them open. Recycle before Cloud SQL's idle cut-off; no pre-ping,
# because it costs a round trip on every checkout: a dead connection is detected when used,
# the pool is invalidated, and run_in_transaction retries once on a fresh one.
_POOL_RECYCLE_SECONDS = 1800
_POOL_TIMEOUT_SECONDS = 10


def _cloud_sql_creator(settings: Settings) -> Callable[[], Any]:
    # Imported here: the connector is heavy (~0.6 s) and only production needs it.
    from google.cloud.sql.connector import Connector, IPTypes

    connector = Connector(refresh_strategy="LAZY")  # one per engine: kept alive by getconn below
    ip_type = {"public": IPTypes.PUBLIC, "private": IPTypes.PRIVATE, "psc": IPTypes.PSC}[settings.db_ip_type]

    def getconn() -> Any:
        kwargs: dict[str, Any] = {"user": settings.db_user, "db": settings.db_name, "ip_type": ip_type}
        if settings.db_iam_auth:
            kwargs["enable_iam_auth"] = True
        else:
            kwargs["password"] = settings.db_password
        return connector.connect(settings.instance_connection_name, "pg8000", **kwargs)

    return getconn


@functools.lru_cache(maxsize=1024)
def _converted(query: str) -> str:
    statement: str = _pg8000_convert_paramstyle("format", query, ())[0]
    return statement


def _cached_convert_paramstyle(style: str, query: str, args: Any) -> tuple[str, Any]:
    # For the "format" style SQLAlchemy uses, the rewritten SQL depends on the query text alone and
    # the values pass through unchanged, so the rewrite can be cached per distinct statement.
    if style == "format" and isinstance(args, tuple | list):
        return _converted(query), args
    result: tuple[str, Any] = _pg8000_convert_paramstyle(style, query, args)
    return result


def _cache_paramstyle_conversion() -> None:
    """pg8000 rewrites %s placeholders by scanning the SQL character by character on every
    execute: 1.6 ms of CPU for our longest statements, more than the database takes to answer
    them (measured in BENCHMARKS.md). Our statements are a fixed set, so remember the rewrites."""
    global _pg8000_convert_paramstyle
    import pg8000.legacy

    if pg8000.legacy.convert_paramstyle is not _cached_convert_paramstyle:
        _pg8000_convert_paramstyle = pg8000.legacy.convert_paramstyle
        pg8000.legacy.convert_paramstyle = _cached_convert_paramstyle


_pg8000_convert_paramstyle: Any = None


def create_engine(settings: Settings, *, autocommit: bool = True) -> sa.Engine:
    """Build an engine for these settings (the connector in production, a URL otherwise).

    The application's engine runs pg8000 in autocommit mode and opens transactions itself
    (run_in_transaction): pg8000 sends a DBAPI commit as a three-round-trip extended-protocol
    statement, and a plain BEGIN on every checkout even for a lone SELECT. A single statement is
    atomic on its own and needs neither (run_statement). Migrations use autocommit=False.
    """
    _cache_paramstyle_conversion()
    common: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_recycle": _POOL_RECYCLE_SECONDS,
        "pool_timeout": _POOL_TIMEOUT_SECONDS,
        "pool_pre_ping": False,
    }
    if autocommit:
        common["isolation_level"] = "AUTOCOMMIT"
    if settings.instance_connection_name:
        engine = sa.create_engine("postgresql+pg8000://", creator=_cloud_sql_creator(settings), **common)
    else:
        if not settings.database_url:
            raise DatabaseUnavailable("no database configured (DATABASE_URL or INSTANCE_CONNECTION_NAME)")
        url = sa.engine.make_url(settings.database_url)
        if "unix_sock" in url.query:
            # PostgreSQL never speaks TLS on a unix socket, yet pg8000 builds a default SSL context
            # (loading the system CA store: ~50 ms) and sends an SSLRequest on every connect unless told not to.
            common["connect_args"] = {"ssl_context": False}
        engine = sa.create_engine(url, **common)
    sa.event.listen(engine, "handle_error", _count_server_disconnects)
    return engine


# SQLSTATEs the server sends when it is going away or not taking connections yet: class 08
# (connection exception), admin and crash shutdown, "the database system is starting up / shutting
# down", too many connections. pg8000 reports them as ProgrammingError or DatabaseError, which
# SQLAlchemy does not count as disconnects.
_UNAVAILABLE_SQLSTATES = ("57P01", "57P02", "57P03", "53300")


def server_error_fields(error: sa_exc.DBAPIError) -> dict[str, str]:
    """The fields of the server's error message as pg8000 hands them over (its first argument):
    "C" the SQLSTATE, "M" the message, "S" the severity... Empty for an error raised client-side."""
    return _driver_error_fields(error.orig)


def _driver_error_fields(driver_error: BaseException | None) -> dict[str, str]:
    args = getattr(driver_error, "args", ())
    if args and isinstance(args[0], dict):
        return {str(key): str(value) for key, value in args[0].items()}
    return {}


def _is_session_ending(code: str) -> bool:
    return code.startswith("08") or code in _UNAVAILABLE_SQLSTATES


def _count_server_disconnects(context: sa.engine.ExceptionContext) -> None:
    """Tell SQLAlchemy that a session-ending SQLSTATE is a disconnect, so that it invalidates the
    connection (and the pool's older ones) instead of handing the dead connection back to the pool,
    where the retry would check it out again. Whether a killed backend surfaces as its FATAL message
    (57P01) or as a broken socket depends on timing; both must end the same way."""
    if _is_session_ending(_driver_error_fields(context.original_exception).get("C", "")):
        context.is_disconnect = True


def _sqlstate(error: sa_exc.DBAPIError) -> str:
    return server_error_fields(error).get("C") or str(getattr(error.orig, "sqlstate", "") or "")


def is_disconnect(error: BaseException) -> bool:
    """True when a driver error means the connection or the server is gone."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sa_exc.DBAPIError) and _is_session_ending(_sqlstate(error)):
        return True
    if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    if isinstance(error, sa_exc.TimeoutError):  # pool exhausted
        return True
    return isinstance(error, ConnectionError | OSError)


@contextlib.contextmanager
def _transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    # Simple-protocol BEGIN/COMMIT: one round trip each (see create_engine).
    with engine.connect() as conn:
        conn.exec_driver_sql("BEGIN")
        try:
            yield conn
        except BaseException:
            # A connection cut mid-transaction (a restart, a failover) is already invalidated: the
            # server ended the transaction with the session, and SQLAlchemy refuses any statement on
            # it (PendingRollbackError), which would replace the disconnect being raised and so
            # turn a retry/503 into a 500. Only a live connection has something to roll back.
            if not conn.invalidated:
                with contextlib.suppress(sa_exc.DBAPIError, ConnectionError, OSError):
                    conn.exec_driver_sql("ROLLBACK")
            raise
        conn.exec_driver_sql("COMMIT")


@contextlib.contextmanager
def _single_statement(engine: sa.Engine) -> Iterator[sa.Connection]:
    with engine.connect() as conn:
        yield conn


def _retrying(opener: Callable[[sa.Engine], Any], work: Callable[[sa.Connection], T], engine: sa.Engine) -> T:
    for attempt in (1, 2):
        try:
            with opener(engine) as conn:
                return work(conn)
        except (sa_exc.DBAPIError, sa_exc.TimeoutError, ConnectionError) as error:
            if not is_disconnect(error):
                raise
            if attempt == 2:
                raise DatabaseUnavailable("the database is unreachable") from error
    raise AssertionError("unreachable")


def prepared(conn: sa.Connection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Run ``sql`` (``:name`` parameters) as a named prepared statement of this connection; its rows.

    pg8000 sends an ordinary parameterised statement unnamed, as three exchanges (Parse, Describe,
    Bind/Execute, each with its Sync), and PostgreSQL plans it afresh every time. Prepared once per
    connection, it is one exchange (Bind/Execute/Sync) and its plan is cached. The statement is
    remembered in the pool entry's ``info``, which the pool clears when it replaces the connection.
    Built on pg8000's core connection (prepare_statement / execute_named), which both its DB-API
    connection (what the Cloud SQL connector returns) and its legacy one (a URL) are. Only for an
    autocommit connection, whose transactions are explicit (BEGIN/COMMIT): pg8000 would not
    begin one for us here. For the engine's hot statements; the SQL must be a constant.
    """
    from pg8000.converters import make_params
    from pg8000.native import to_statement

    fairy = conn.connection
    driver: Any = fairy.dbapi_connection
    if not getattr(driver, "autocommit", False):  # another engine (migrations): the ordinary path
        return [dict(row) for row in conn.execute(sa.text(sql), params).mappings()]
    statements: dict[str, Any] = fairy.info.setdefault("prepared_statements", {})
    dbapi = conn.dialect.loaded_dbapi
    try:
        if sql not in statements:
            text, arguments = to_statement(sql)
            name, columns, decoders = driver.prepare_statement(text, ())
            names = [column["name"] for column in columns or ()]
            statements[sql] = (name, columns, decoders, arguments, names)
        name, columns, decoders, arguments, names = statements[sql]
        values = make_params(driver.py_types, arguments(params))
        rows = driver.execute_named(name, values, columns, decoders, sql).rows or []
    except dbapi.Error as error:
        # What SQLAlchemy does for its own statements: a disconnect invalidates the connection (the
        # retry gets a fresh one) and a driver error becomes a DBAPIError.
        gone = conn.dialect.is_disconnect(error, driver, None) or _is_session_ending(
            _driver_error_fields(error).get("C", "")
        )
        if gone:
            conn.invalidate(error)
        raise sa_exc.DBAPIError.instance(sql, params, error, dbapi.Error, connection_invalidated=gone) from error
    return [dict(zip(names, row, strict=True)) for row in rows]


def run_in_transaction(work: Callable[[sa.Connection], T], *, engine: sa.Engine) -> T:
    """Run ``work`` in one transaction and commit; retry once if the connection was dead.

    Retrying is safe because a transaction whose connection died was never committed.
    """
    return _retrying(_transaction, work, engine)


def run_statement(work: Callable[[sa.Connection], T], *, engine: sa.Engine) -> T:
    """Run ``work`` that issues ONE statement (atomic by itself), with no BEGIN/COMMIT around it.

    Retried once on a dead connection, like run_in_transaction: a statement whose connection died
    before it answered is retried whole; callers use it only for reads and idempotent writes.
    """
    return _retrying(_single_statement, work, engine)


def ping(engine: sa.Engine) -> None:
    """Round-trip to the database; raise DatabaseUnavailable when it does not answer."""
    run_statement(lambda conn: conn.exec_driver_sql("SELECT 1"), engine=engine)
