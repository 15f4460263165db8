"""The AI answerer: Gemini's `generateContent` with a JSON response schema, over httpx.

Errors are sorted the way the pipeline needs them: 429 → ``AIRateLimited`` (its Retry-After, or a
minute), 5xx/timeouts → ``AIUnavailable``; any other refusal is a bug of ours, raised as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from common.providers.live import AIRateLimited, AIUnavailable

TIMEOUT_SECONDS = 120.0


@dataclass
class GeminiAnswerer:
    base_url: str  # https://generativelanguage.googleapis.com, or the local stand-in
    model: str
    api_key: str = ""
    transport: httpx.BaseTransport | None = None

    def generate_json(self, prompt: str, schema: dict[str, Any]) -> str:
        body = {
            "contents": [{"role": "user", "parts": [{"text": prompt}]}],
            "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema, "temperature": 0.4},
        }
        url = f"{self.base_url.rstrip('/')}/v1beta/models/{self.model}:generateContent"
        headers = {"x-goog-api-key": self.api_key} if self.api_key else {}
        try:
            with httpx.Client(timeout=TIMEOUT_SECONDS, transport=self.transport) as http:
                response = http.post(url, json=body, headers=headers)
        except httpx.TransportError as exc:
            raise AIUnavailable(f"the AI service could not be reached: {exc}") from exc
        if response.status_code == 429:
            raise AIRateLimited("the AI service is rate limiting", float(response.headers.get("retry-after") or 60))
        if response.status_code >= 500:
            raise AIUnavailable(f"the AI service answered {response.status_code}")
        response.raise_for_status()
        candidates = response.json().get("candidates") or []
        parts = (candidates[0].get("content") or {}).get("parts") or [] if candidates else []
        return "".join(str(p.get("text", "")) for p in parts)
