"""Idempotency keys of project creation, and the transaction-scoped locks that serialise a user's
creations (one key's concurrent requests; one user's quota checks)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa

# How long a key replays the task it created.
IDEMPOTENCY_TTL = "24 hours"

_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))")

_FIND = sa.text(
    """
    SELECT fingerprint, task_id, expires_at > now() AS live FROM idempotency_keys
    WHERE user_id = :user_id AND key = :key
    """
)

_FORGET = sa.text("DELETE FROM idempotency_keys WHERE user_id = :user_id AND key = :key")

_REMEMBER = sa.text(
    f"""
    INSERT INTO idempotency_keys (user_id, key, fingerprint, task_id, expires_at)
    VALUES (:user_id, :key, :fingerprint, :task_id, now() + interval '{IDEMPOTENCY_TTL}')
    """
)


def lock_until_commit(conn: sa.Connection, name: str) -> None:
    """Wait for, then hold until the transaction ends, the lock called ``name``."""
    conn.execute(_LOCK, {"name": name})


@dataclass(frozen=True)
class StoredKey:
    fingerprint: str  # of the body that created the task
    task_id: uuid.UUID
    live: bool  # not yet expired


def find_key(conn: sa.Connection, user_id: uuid.UUID, key: str) -> StoredKey | None:
    row = conn.execute(_FIND, {"user_id": user_id, "key": key}).first()
    return None if row is None else StoredKey(fingerprint=row.fingerprint, task_id=row.task_id, live=row.live)


def forget_key(conn: sa.Connection, user_id: uuid.UUID, key: str) -> None:
    conn.execute(_FORGET, {"user_id": user_id, "key": key})


def remember_key(conn: sa.Connection, user_id: uuid.UUID, key: str, fingerprint: str, task_id: uuid.UUID) -> None:
    conn.execute(_REMEMBER, {"user_id": user_id, "key": key, "fingerprint": fingerprint, "task_id": task_id})
