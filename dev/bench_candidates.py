"""What the Findings of BENCHMARKS.md still propose, written out so that `make bench` can measure them.

Nothing here is used by Planter. `make bench` serves the gateway a second time with these applied
(dev/bench_gateway_candidates.py, same settings) and runs the pipeline steps of
every other task with them applied in-process, so that each open recommendation comes with its
measured effect next to the shipped code, in the same run:

1. the pipeline's claim commits without waiting for the WAL flush (``SET LOCAL synchronous_commit
   = off``): a claim lost in a crash is redone by the next delivery, and the durable commit of the
   step's record flushes the WAL up to it anyway;
2. pg8000's placeholder rewrite cached per statement, if Planter does not do it already.

Landed recommendations leave this list: the bench then measures them as shipped.
"""

from __future__ import annotations

import sys
from typing import Any

import sqlalchemy as sa

_patches: list[tuple[Any, str, Any]] = []  # (owner, attribute, previous value), newest last
_statement_cache: dict[str, str] = {}
_STATEMENT_CACHE_LIMIT = 2_000


def _patch(owner: Any, name: str, value: Any) -> None:
    _patches.append((owner, name, getattr(owner, name)))
    setattr(owner, name, value)


def undo() -> None:
    """Take every candidate out of this process again (newest patch first)."""
    while _patches:
        owner, name, value = _patches.pop()
        setattr(owner, name, value)


def autocommit_engine(url: str, pool_size: int) -> sa.Engine:
    """An engine whose connections are in autocommit mode from the start (no reset on return)."""
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", pool_size=pool_size, max_overflow=0)


def paramstyle_cached() -> bool:
    """Whether pg8000's placeholder rewrite in this process is anything but pg8000's own scan."""
    from pg8000 import dbapi, legacy

    return legacy.convert_paramstyle is not dbapi.convert_paramstyle


def uncached_paramstyle() -> None:
    """Put pg8000's own character-by-character rewrite back (to measure what a cache saves)."""
    from pg8000 import dbapi, legacy

    _patch(legacy, "convert_paramstyle", dbapi.convert_paramstyle)


def memoize_paramstyle() -> None:
    """Cache pg8000's placeholder rewrite per SQL text ("format" style: the result depends on the text only)."""
    from pg8000 import legacy

    original = legacy.convert_paramstyle

    def convert(style: str, query: str, args: Any) -> tuple[str, Any]:
        if style != "format":
            return original(style, query, args)  # type: ignore[no-any-return]
        statement = _statement_cache.get(query)
        if statement is None:
            statement, _ = original(style, query, args)
            if len(_statement_cache) < _STATEMENT_CACHE_LIMIT:
                _statement_cache[query] = statement
        return statement, args

    _patch(legacy, "convert_paramstyle", convert)


def apply() -> None:
    """Install every candidate in this process (``undo`` takes them out): what the candidate server runs."""
    import functions.routes  # noqa: F401  (imports every handler module, so all can be patched now)

    if not paramstyle_cached():
        memoize_paramstyle()

    # 1. The claim commits without waiting for the WAL flush.
    steps_queries = sys.modules["common.queries.steps"]
    original_claim = steps_queries.claim

    def claim(conn: sa.Connection, *args: Any, **kwargs: Any) -> Any:
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        return original_claim(conn, *args, **kwargs)

    _patch(steps_queries, "claim", claim)
