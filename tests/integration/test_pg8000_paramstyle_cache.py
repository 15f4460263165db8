"""The guard on common/db.py's one patch of a driver internal (pg8000.legacy.convert_paramstyle,
replaced by a per-statement cache of the %s → $n rewrite). It relies on four things pg8000 and
SQLAlchemy do today; each test below fails when an upgrade changes one of them, instead of the
patch silently doing nothing (a 2x slower progress write, BENCHMARKS.md) or rewriting SQL wrongly."""

from __future__ import annotations

import inspect
import pathlib
import re
from importlib import metadata

import pg8000.dbapi
import pg8000.legacy
import pytest
import sqlalchemy as sa

from common import db
from common.config import Settings
from common.queries import tasks as task_q

REQUIREMENTS = pathlib.Path(__file__).resolve().parents[2] / "requirements.txt"

# Statements whose quoting the rewrite must respect: literals, quoted identifiers, E'' strings,
# dollar quotes, comments, casts and %% escapes, plus a statement with the task's whole select list.
CORPUS = [
    "SELECT %s",
    "SELECT '%%s is not a placeholder', %s",
    "SELECT \"odd%%name\" FROM t WHERE a = %s AND b = E'it''s %%' -- %s in a comment\n AND c = %s",
    "SELECT $$ %%s inside a dollar quote $$, %s::int, CAST(%s AS text)",
    "SELECT 100 %% 7, %s",
    str(task_q._TASK_BY_ID.compile(dialect=sa.create_engine("postgresql+pg8000://").dialect)),
]


def test_pg8000_is_pinned_to_the_minor_version_the_patch_was_checked_against() -> None:
    lines = [line.split("#")[0].strip() for line in REQUIREMENTS.read_text().splitlines()]
    pins = [line for line in lines if re.match(r"pg8000\b", line)]
    assert pins == ["pg8000>=1.31,<1.32"], pins
    installed = tuple(int(part) for part in metadata.version("pg8000").split(".")[:2])
    assert installed == (1, 31)


def test_pg8000_still_looks_the_rewrite_up_where_the_patch_replaces_it() -> None:
    # The legacy cursor (what SQLAlchemy's pg8000 dialect uses) calls convert_paramstyle as a
    # global of pg8000.legacy, with (style, query, args), on every execute with parameters.
    assert "convert_paramstyle" in pg8000.legacy.Cursor.execute.__code__.co_names
    assert list(inspect.signature(pg8000.dbapi.convert_paramstyle).parameters) == ["style", "query", "args"]
    assert sa.create_engine("postgresql+pg8000://").dialect.paramstyle == "format"


@pytest.mark.parametrize("query", CORPUS)
def test_the_cached_rewrite_is_pg8000s_own(query: str) -> None:
    # The cache keys on the SQL text alone: for the "format" style pg8000's result must not
    # depend on the values, which it passes through unchanged.
    count = query.replace("%%", "").count("%s")
    first, second = tuple(range(count)), tuple(f"v{i}" for i in range(count))
    own_first = pg8000.dbapi.convert_paramstyle("format", query, first)
    own_second = pg8000.dbapi.convert_paramstyle("format", query, second)
    assert own_first[0] == own_second[0]
    assert own_first[1] is first and own_second[1] is second
    db.create_engine(Settings(database_url="postgresql+pg8000://nobody@/nowhere"))  # installs the cache
    assert db._cached_convert_paramstyle("format", query, first) == own_first
    assert db._cached_convert_paramstyle("format", query, second) == own_second


def test_statements_sent_through_the_engine_go_through_the_cache(engine: sa.Engine) -> None:
    assert pg8000.legacy.convert_paramstyle is db._cached_convert_paramstyle
    statement = sa.text("SELECT CAST(:n AS int) + 1 AS guard_probe")
    before = db._converted.cache_info()
    with engine.connect() as conn:
        assert conn.execute(statement, {"n": 1}).scalar_one() == 2
        assert conn.execute(statement, {"n": 2}).scalar_one() == 3
    after = db._converted.cache_info()
    assert after.misses - before.misses == 1  # rewritten once, by pg8000's own scanner
    assert after.hits - before.hits == 1  # and served from the cache the second time
