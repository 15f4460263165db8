"""Bodies of the live-update routes (the streams themselves are text/event-stream, not models)."""

from __future__ import annotations

from common.models import Model


class StreamTokenOut(Model):
    token: str
    expires_at: str  # ISO 8601 UTC with Z; at most 5 minutes ahead
