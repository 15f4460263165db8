"""The calling user: created on first sight of an email, remembered per instance."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass

from common.auth import Identity
from common.db import run_statement
from common.queries import users as q

_CACHE_LIMIT = 10_000


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str


_known: dict[str, uuid.UUID] = {}
_lock = threading.Lock()


def resolve_user(identity: Identity) -> User:
    """The user row for a verified identity; one upsert per email per warm instance."""
    user_id = _known.get(identity.email)
    if user_id is None:
        user_id = run_statement(lambda conn: q.upsert_user(conn, identity.email, identity.subject))
        with _lock:
            if len(_known) >= _CACHE_LIMIT:
                _known.clear()
            _known[identity.email] = user_id
    return User(id=user_id, email=identity.email)


def forget_users() -> None:
    """Drop the per-instance cache (when the database under it is replaced)."""
    with _lock:
        _known.clear()
