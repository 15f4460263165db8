"""The baselines `make bench` compares Planter with, served by functions-framework like Planter.

``hello``: the HTTP ceiling, a function that does nothing but answer.
``minimal``: the cold-start baseline, importing only functions-framework, SQLAlchemy and pg8000
and answering its first request after one ``SELECT 1`` through a lazily created engine, as a
Planter function answers its first request after connecting.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import flask
import functions_framework
import pg8000  # noqa: F401  (imported for the cold-start baseline, as Planter's functions do)
import sqlalchemy as sa

_engine: sa.Engine | None = None
_lock = threading.Lock()


@functions_framework.http
def hello(request: flask.Request) -> tuple[str, int, dict[str, str]]:
    """The HTTP ceiling: no work at all."""
    return '{"ok":true}', 200, {"Content-Type": "application/json"}


def _get_engine() -> sa.Engine:
    global _engine
    if _engine is None:
        with _lock:
            if _engine is None:
                # Connected as Planter connects (common/db.py), so that the cold-start ratio shows
                # Planter's imports and work, not a connection setting the baseline could share.
                url = sa.engine.make_url(os.environ["DATABASE_URL"])
                no_tls = {"ssl_context": False} if "unix_sock" in url.query else {}
                _engine = sa.create_engine(url, pool_size=4, max_overflow=0, connect_args=no_tls)
    return _engine


@functions_framework.http
def minimal(request: flask.Request) -> tuple[str, int, dict[str, Any]]:
    """The cold-start baseline: one query through SQLAlchemy + pg8000, connected on first use."""
    with _get_engine().connect() as conn:
        value = conn.execute(sa.text("SELECT 1")).scalar_one()
    return f'{{"ok":{value}}}', 200, {"Content-Type": "application/json"}
