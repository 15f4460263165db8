"""GitHub App authentication: an app JWT (RS256) buys installation tokens, cached until shortly
before they expire (they last an hour), one per organization."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx
import jwt

from common.github.client import GitHubClient, GitHubRefused

REFRESH_MARGIN_SECONDS = 300  # a token is replaced 5 minutes before it expires


class AppNotInstalled(Exception):
    def __init__(self, owner: str) -> None:
        super().__init__(owner)
        self.owner = owner


@dataclass
class AppAuth:
    """Tokens for Planter's GitHub App; ``private_key`` is the PEM from Secret Manager."""

    base_url: str
    app_id: str
    private_key: str
    clock: Callable[[], float] = time.time
    transport: httpx.BaseTransport | None = None
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def app_jwt(self) -> str:
        now = int(self.clock())
        # iat 60 s in the past against clock drift; GitHub accepts at most 10 minutes of life.
        claims = {"iat": now - 60, "exp": now + 540, "iss": self.app_id}
        return jwt.encode(claims, self.private_key, algorithm="RS256")

    def _as_app(self) -> GitHubClient:
        return GitHubClient(self.base_url, self.app_jwt, transport=self.transport, clock=self.clock)

    def installation_id(self, owner: str) -> int:
        try:
            found = self._as_app().request("GET", "/orgs/{org}/installation", org=owner)
        except GitHubRefused as error:
            if error.status == 404:
                raise AppNotInstalled(owner) from error
            raise
        return int(found["id"])

    def token_for(self, owner: str) -> str:
        with self._lock:
            cached = self._tokens.get(owner.lower())
            if cached and cached[1] - REFRESH_MARGIN_SECONDS > self.clock():
                return cached[0]
        iid = self.installation_id(owner)
        issued = self._as_app().request("POST", "/app/installations/{iid}/access_tokens", iid=iid)
        expires = datetime.fromisoformat(str(issued["expires_at"]).replace("Z", "+00:00")).timestamp()
        with self._lock:
            self._tokens[owner.lower()] = (str(issued["token"]), expires)
        return str(issued["token"])
