"""How Planter acts on an owner's GitHub: as its App (production) or with one token (local)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from common.github import repos
from common.github.app_auth import AppAuth, AppNotInstalled
from common.github.client import Call, GitHubClient, new_http


class GitHubAccess(Protocol):
    calls: list[Call]

    def installation(self, owner: str) -> dict[str, Any] | None:
        """The App's installation on ``owner``; None when the App is not installed there."""

    def client(self, owner: str) -> GitHubClient:
        """A client acting on ``owner``'s repositories."""


@dataclass
class TokenAccess:
    """One token for everything (GITHUB_TOKEN): the local stand-in, or a single-org setup."""

    base_url: str
    token: str
    transport: httpx.BaseTransport | None = None
    calls: list[Call] = field(default_factory=list)

    _http: httpx.Client | None = None

    def client(self, owner: str) -> GitHubClient:
        if self._http is None:
            self._http = new_http(self.base_url, self.transport)
        return GitHubClient(self.base_url, lambda: self.token, calls=self.calls, _http=self._http)

    def installation(self, owner: str) -> dict[str, Any] | None:
        return repos.installation(self.client(owner), owner)


@dataclass
class AppAccess:
    """Planter's GitHub App: installation tokens per owner, cached by AppAuth."""

    auth: AppAuth
    calls: list[Call] = field(default_factory=list)

    _http: httpx.Client | None = None

    def client(self, owner: str) -> GitHubClient:
        if self._http is None:
            self._http = new_http(self.auth.base_url, self.auth.transport)
        return GitHubClient(self.auth.base_url, lambda: self.auth.token_for(owner), calls=self.calls, _http=self._http)

    def installation(self, owner: str) -> dict[str, Any] | None:
        try:
            return {"id": self.auth.installation_id(owner)}
        except AppNotInstalled:
            return None
