"""The calling user: created on first sight of an email, remembered per instance (``rt.users``)."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.auth import Identity
from common.queries import users as q

if TYPE_CHECKING:
    from common.runtime import Runtime

_CACHE_LIMIT = 10_000


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str


class KnownUsers:
    """The user ids this instance has upserted, by email: one upsert per email per warm instance."""

    def __init__(self) -> None:
        self._ids: dict[str, uuid.UUID] = {}
        self._lock = threading.Lock()

    def get(self, email: str) -> uuid.UUID | None:
        return self._ids.get(email)

    def remember(self, email: str, user_id: uuid.UUID) -> None:
        with self._lock:
            if len(self._ids) >= _CACHE_LIMIT:
                self._ids.clear()
            self._ids[email] = user_id


def resolve_user(rt: Runtime, identity: Identity) -> User:
    """The user row for a verified identity; one upsert per email per warm instance."""
    user_id = rt.users.get(identity.email)
    if user_id is None:
        user_id = rt.db.statement(lambda conn: q.upsert_user(conn, identity.email, identity.subject))
        rt.users.remember(identity.email, user_id)
    return User(id=user_id, email=identity.email)
