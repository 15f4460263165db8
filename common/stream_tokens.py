"""Short stream tokens for browsers' EventSource, which cannot send an Authorization header.

A stream token names one user, lasts at most five minutes (STREAM_TOKEN_TTL_SECONDS) and is only
accepted as ``?access_token=`` on the two event routes (auth kind "stream" in common/http.py).
It is signed with a key derived from STEP_SIGNING_SECRET for this one purpose, so it can never
pass as a user token (JWT_SECRET or the JWKS) nor as a callback token (another key, another
audience), even where an operator set the two secrets to the same value.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt

from common.config import Settings
from common.errors import Unauthorized

STREAM_AUDIENCE = "planter-stream"


@dataclass(frozen=True)
class StreamToken:
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class StreamIdentity:
    user_id: uuid.UUID
    email: str


def _key(settings: Settings) -> bytes:
    return hmac.new(settings.step_signing_secret.encode(), b"planter-stream-token", hashlib.sha256).digest()


def issue_stream_token(user_id: uuid.UUID, email: str, settings: Settings, now: float) -> StreamToken:
    issued = int(now)
    expires = issued + settings.stream_token_ttl_seconds
    claims = {"sub": str(user_id), "email": email, "aud": STREAM_AUDIENCE, "iat": issued, "exp": expires}
    token = jwt.encode(claims, _key(settings), algorithm="HS256")
    return StreamToken(token=token, expires_at=datetime.fromtimestamp(expires, UTC))


def verify_stream_token(token: str, settings: Settings) -> StreamIdentity:
    """The user a stream token names; 401 when it is forged, for another use, or expired.

    No leeway: the token is minted by this service for at most five minutes, so "expired" means it."""
    try:
        claims = jwt.decode(
            token, _key(settings), algorithms=["HS256"], audience=STREAM_AUDIENCE, options={"require": ["exp", "sub"]}
        )
        return StreamIdentity(user_id=uuid.UUID(str(claims["sub"])), email=str(claims.get("email", "")))
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the stream token has expired; ask for a new one") from None
    except (jwt.PyJWTError, ValueError):
        raise Unauthorized("the stream token is invalid") from None
