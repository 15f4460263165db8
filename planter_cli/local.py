"""What the CLI signs itself, for local development: user tokens and admin requests."""

from __future__ import annotations

import os
import time

import jwt

from common.auth import SIGNATURE_HEADER, sign_body
from common.config import DEV_JWT_SECRET, DEV_STEP_SECRET


def user_token(email: str, ttl_seconds: int) -> str:
    """An HS256 user token signed with JWT_SECRET (the development placeholder when unset)."""
    secret = os.environ.get("JWT_SECRET") or DEV_JWT_SECRET
    now = int(time.time())
    claims = {"email": email.strip().lower(), "sub": email.strip().lower(), "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, secret, algorithm="HS256")


def admin_headers(signed: bytes) -> dict[str, str]:
    """The signature the internal routes check: HMAC-SHA256 with STEP_SIGNING_SECRET over the
    body (a GET: over the path with its query string). In production these routes are IAM-only."""
    secret = os.environ.get("STEP_SIGNING_SECRET") or DEV_STEP_SECRET
    headers = {SIGNATURE_HEADER: sign_body(signed, secret)}
    identity = os.environ.get("PLANTER_ID_TOKEN")  # production: a Google ID token for IAM
    if identity:
        headers["Authorization"] = f"Bearer {identity}"
    return headers
