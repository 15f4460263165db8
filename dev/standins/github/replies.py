"""GitHub's error bodies and JSON replies, shared by the stand-in's route modules."""

from __future__ import annotations

import base64
import json
from typing import Any

from werkzeug.wrappers import Request, Response

DOCS = "https://docs.github.com/rest"


class GitHubError(Exception):
    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors


def jwt_claims(request: Request) -> dict[str, Any]:
    """The claims of the bearer JWT, unverified (the stand-in does not hold the App's public key)."""
    token = request.headers.get("Authorization", "").partition(" ")[2]
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return {}
    return claims if isinstance(claims, dict) else {}


def reply(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json; charset=utf-8")
