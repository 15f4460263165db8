"""What the Findings of BENCHMARKS.md still propose, written out so that `make bench` can measure them.

Nothing here is used by Planter. `make bench` serves the gateway a second time with these applied
(dev/bench_gateway_candidates.py, same settings but the pool below) and runs the pipeline steps of
every other task with them applied in-process, so that each open recommendation comes with its
measured effect next to the shipped code, in the same run:

1. the pipeline's claim commits without waiting for the WAL flush (``SET LOCAL synchronous_commit
   = off``): a claim lost in a crash is redone by the next delivery, and the durable commit of the
   step's record flushes the WAL up to it anyway;
2. responses serialized by pydantic-core (``model_dump_json``) instead of ``model_dump`` +
   ``json.dumps``;
3. verified tokens remembered per instance for at most a minute (and never past their ``exp``):
   PyJWT costs 0.1-0.2 ms per verification here;
4. (server setting, applied by the bench when it starts the candidate server) the pool without
   overflow: ``DB_POOL_SIZE`` = pool size + overflow, ``DB_MAX_OVERFLOW=0``: the same cap on
   connections, but SQLAlchemy no longer closes the overflow connections it opens under load;
5. pg8000's placeholder rewrite cached per statement, if Planter does not do it already.

Landed recommendations leave this list: the bench then measures them as shipped.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from typing import Any

import sqlalchemy as sa

_patches: list[tuple[Any, str, Any]] = []  # (owner, attribute, previous value), newest last
_statement_cache: dict[str, str] = {}
_STATEMENT_CACHE_LIMIT = 2_000
TOKEN_TTL_SECONDS = 60.0
_TOKEN_CACHE_LIMIT = 10_000


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


def _expires(token: str) -> float:
    """The token's exp claim (seconds since the epoch), read without verifying; 0 when absent."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims.get("exp", 0))
    except (IndexError, ValueError, TypeError, AttributeError):
        return 0.0


def _cache_tokens(auth: Any) -> None:
    lock = threading.Lock()
    verified: dict[tuple[str, ...], tuple[float, Any]] = {}

    def remember(key: tuple[str, ...], token: str, value: Any) -> None:
        until = min(time.time() + TOKEN_TTL_SECONDS, _expires(token))
        with lock:
            if len(verified) >= _TOKEN_CACHE_LIMIT:
                verified.clear()
            verified[key] = (until, value)

    def cached(key: tuple[str, ...]) -> tuple[bool, Any]:
        hit = verified.get(key)
        if hit is not None and hit[0] > time.time():
            return True, hit[1]
        return False, None

    user_original = auth.verify_user_token
    callback_original = auth.verify_callback_token

    def verify_user_token(token: str, settings: Any = None) -> Any:
        if settings is not None:
            return user_original(token, settings)
        found, identity = cached(("user", token))
        if found:
            return identity
        identity = user_original(token)
        remember(("user", token), token, identity)
        return identity

    def verify_callback_token(token: str, task_id: str, settings: Any = None) -> None:
        if settings is not None:
            return callback_original(token, task_id, settings)  # type: ignore[no-any-return]
        found, _ = cached(("callback", token, task_id))
        if found:
            return None
        callback_original(token, task_id)
        remember(("callback", token, task_id), token, None)
        return None

    _patch(auth, "verify_user_token", verify_user_token)
    _patch(auth, "verify_callback_token", verify_callback_token)


def apply() -> None:
    """Install every candidate in this process (``undo`` takes them out): what the candidate server runs."""
    import importlib

    import flask
    from pydantic import BaseModel

    from common import auth, http
    from functions.routes import ROUTES

    for route in ROUTES:  # the handler modules are imported lazily in production; patch them all now
        importlib.import_module(route.handler.partition(":")[0])
    if not paramstyle_cached():
        memoize_paramstyle()

    # 1. The claim commits without waiting for the WAL flush.
    steps_queries = sys.modules["common.queries.steps"]
    original_claim = steps_queries.claim

    def claim(conn: sa.Connection, *args: Any, **kwargs: Any) -> Any:
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        return original_claim(conn, *args, **kwargs)

    _patch(steps_queries, "claim", claim)

    # 2. Responses serialized by pydantic-core.
    def to_response(reply: Any) -> flask.Response:
        body = reply.body
        if isinstance(body, BaseModel):
            text = body.model_dump_json()
        else:
            text = "" if body is None else json.dumps(body, separators=(",", ":"))
        response = flask.Response(text, status=reply.status, mimetype="application/json" if text else None)
        response.headers.update(reply.headers)
        return response

    _patch(http, "_to_response", to_response)

    # 3. Verified tokens remembered for a minute.
    _cache_tokens(auth)


def pool_without_overflow(settings: dict[str, str]) -> dict[str, str]:
    """Candidate 4: the same connection cap as DB_POOL_SIZE + DB_MAX_OVERFLOW, all of it pooled."""
    total = int(settings["DB_POOL_SIZE"]) + int(settings["DB_MAX_OVERFLOW"])
    return {"DB_POOL_SIZE": str(total), "DB_MAX_OVERFLOW": "0"}
