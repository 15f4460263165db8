"""The AI service: Gemini through google-genai, on Vertex AI in production, a local stand-in otherwise.

One small class, built from its settings at the entry point and passed to whoever uses it (the
assistant, the pipeline's AI steps); tests build it against the stand-in or pass their own
object with the same two methods (``AIClient``). Every failure of the service is raised as one
of the project's own exceptions below, classified so that callers can decide without knowing
google-genai: rate limited (with the service's retry-after), transient (5xx, timeouts, a broken
connection, an answer that does not parse) or permanent (any other 4xx: retrying cannot help).

google-genai costs ~0.65 s to import: it is imported on the first call, never at module import,
so functions that never talk to the model do not pay for it at cold start.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, overload

from pydantic import BaseModel, ValidationError

from common.config import Settings
from common.errors import RetryLater
from common.lazy import Lazy

M = TypeVar("M", bound=BaseModel)

# What a local client sends as its bearer token: the stand-in accepts anything, and static
# credentials never try to refresh (anonymous ones fail to, inside google-auth).
LOCAL_TOKEN = "placeholder-for-the-local-stand-in"  # noqa: S105  (not a secret)
DEFAULT_RATE_LIMIT_WAIT = 30
DEFAULT_TRANSIENT_WAIT = 5
# No tools are passed, so the SDK's automatic function calling has nothing to do (and logs less).
_NO_TOOLS: dict[str, Any] = {"automatic_function_calling": {"disable": True}}


class AIServiceError(RetryLater):
    """The AI service did not give a usable answer. 503 + Retry-After when it reaches a client."""

    type_slug = "ai-unavailable"
    permanent = False

    def __init__(self, detail: str, *, retry_after: int = DEFAULT_TRANSIENT_WAIT):
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = max(1, retry_after)


class AIRateLimited(AIServiceError):
    """429 / RESOURCE_EXHAUSTED: try again after ``retry_after`` seconds (the service's own figure)."""


class AITransient(AIServiceError):
    """5xx, a timeout, a dropped connection or an answer that did not parse: worth retrying soon."""


class AIPermanent(AIServiceError):
    """A 4xx other than 429 (bad request, permission, unknown model): retrying the same call cannot help."""

    permanent = True


@dataclass(frozen=True)
class ChatTurn:
    """One message of a conversation as the model sees it."""

    role: Literal["user", "model"]
    text: str


class AIClient(Protocol):
    """What users of the AI service depend on; GeminiClient is the real one."""

    def generate_text(self, system: str, messages: Sequence[ChatTurn]) -> str: ...

    @overload
    def generate_json(self, prompt: str, schema: type[M], *, system: str = "") -> M: ...

    @overload
    def generate_json(self, prompt: str, schema: dict[str, Any], *, system: str = "") -> dict[str, Any]: ...


@dataclass(frozen=True)
class AISettings:
    model: str
    project: str
    location: str
    base_url: str = ""  # set: talk to this server (the local stand-in) instead of Google's
    api_key: str = ""  # set with base_url: the Gemini Developer API URL shape; unset: Vertex AI's
    timeout_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> AISettings:
        return cls(
            model=settings.ai_model,
            project=settings.ai_project,
            location=settings.ai_location,
            base_url=settings.ai_base_url,
            api_key=settings.ai_api_key,
            timeout_seconds=settings.ai_timeout_seconds,
        )


class GeminiClient:
    """Gemini's generateContent, with errors classified into the exceptions above."""

    def __init__(self, settings: AISettings):
        self.settings = settings
        self._client: Lazy[Any] = Lazy(self._build)

    def _genai(self) -> Any:
        return self._client.get()

    def _build(self) -> Any:
        from google import genai
        from google.genai import types

        s = self.settings
        # No retries inside the SDK: a request handler must answer 503 + Retry-After rather than
        # sleep through the SDK's backoff (up to a minute), and the pipeline has its own backoff.
        http = types.HttpOptions(
            timeout=int(s.timeout_seconds * 1000),
            retry_options=types.HttpRetryOptions(attempts=1),
            **({"base_url": s.base_url} if s.base_url else {}),
        )
        if s.base_url and s.api_key:
            return genai.Client(api_key=s.api_key, http_options=http)
        credentials = None
        if s.base_url:
            import google.oauth2.credentials

            credentials = google.oauth2.credentials.Credentials(token=LOCAL_TOKEN)  # type: ignore[no-untyped-call]
        return genai.Client(
            vertexai=True, project=s.project, location=s.location, credentials=credentials, http_options=http
        )

    def generate_text(self, system: str, messages: Sequence[ChatTurn]) -> str:
        """The model's answer to a conversation (the last message is the user's), under ``system``."""
        from google.genai import types

        contents = [types.Content(role=m.role, parts=[types.Part(text=m.text)]) for m in messages]
        config = types.GenerateContentConfig(system_instruction=system or None, **_NO_TOOLS)
        text = self._text_of(self._call(contents, config))
        if not text.strip():
            raise AITransient("the AI service gave an empty answer")
        return text

    @overload
    def generate_json(self, prompt: str, schema: type[M], *, system: str = "") -> M: ...

    @overload
    def generate_json(self, prompt: str, schema: dict[str, Any], *, system: str = "") -> dict[str, Any]: ...

    def generate_json(self, prompt: str, schema: type[M] | dict[str, Any], *, system: str = "") -> M | dict[str, Any]:
        """A JSON answer constrained by ``schema`` (a pydantic model, or a JSON Schema object) and
        validated against it; an answer that does not validate is a transient failure."""
        from google.genai import types

        schema_field = {"response_json_schema": schema} if isinstance(schema, dict) else {"response_schema": schema}
        config = types.GenerateContentConfig(
            system_instruction=system or None, response_mime_type="application/json", **schema_field, **_NO_TOOLS
        )
        contents = [types.Content(role="user", parts=[types.Part(text=prompt)])]
        text = self._text_of(self._call(contents, config))
        try:
            if isinstance(schema, dict):
                return _check_json_schema(json.loads(text), schema)
            return schema.model_validate_json(text)
        except (ValueError, ValidationError) as error:
            raise AITransient(f"the AI service's answer does not match the schema: {error}") from None

    def _call(self, contents: Any, config: Any) -> Any:
        from google.auth import exceptions as auth_errors
        from google.genai import errors

        try:
            return self._genai().models.generate_content(model=self.settings.model, contents=contents, config=config)
        except errors.APIError as error:
            raise classify_api_error(error.code, error.message, _headers_of(error)) from error
        except auth_errors.TransportError as error:  # the token endpoint did not answer
            raise AITransient(f"the AI service's credentials could not be refreshed: {error}") from error
        except auth_errors.GoogleAuthError as error:  # no credentials, or refused ones: a configuration fault
            raise AIPermanent(f"the AI service's credentials are not usable: {type(error).__name__}") from error
        except Exception as error:
            # httpx timeouts and connection failures (httpx is the SDK's own transport; named by
            # class so that this module needs no import of it).
            if type(error).__module__.startswith(("httpx", "httpcore")) or isinstance(error, OSError):
                raise AITransient(f"the AI service did not answer: {type(error).__name__}") from error
            raise

    @staticmethod
    def _text_of(response: Any) -> str:
        candidates = getattr(response, "candidates", None) or []
        if not candidates:
            feedback = getattr(response, "prompt_feedback", None)
            raise AIPermanent(f"the AI service refused to answer: {feedback}")
        return str(response.text or "")


def classify_api_error(code: int | None, message: str | None, headers: dict[str, str]) -> AIServiceError:
    """Map an HTTP status from the service to the project's classification."""
    detail = f"the AI service answered {code}: {message or ''}".strip()
    if code == 429:
        return AIRateLimited(detail, retry_after=_retry_after(headers, DEFAULT_RATE_LIMIT_WAIT))
    if code is None or code >= 500 or code == 408:
        return AITransient(detail, retry_after=_retry_after(headers, DEFAULT_TRANSIENT_WAIT))
    return AIPermanent(detail)


def _retry_after(headers: dict[str, str], default: int) -> int:
    raw = headers.get("retry-after", "")
    try:
        return max(1, int(float(raw)))
    except ValueError:
        return default


def _headers_of(error: Any) -> dict[str, str]:
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    return {str(k).lower(): str(v) for k, v in dict(headers).items()}


def _check_json_schema(value: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """The light check a JSON Schema answer gets: an object holding every required property."""
    if not isinstance(value, dict):
        raise ValueError("the answer is not a JSON object")
    missing = [name for name in schema.get("required", []) if name not in value]
    if missing:
        raise ValueError(f"the answer lacks {', '.join(missing)}")
    return value


def build_client(settings: Settings) -> GeminiClient:
    """The AI client of this deployment (called at the entry point; cheap: nothing is imported yet)."""
    return GeminiClient(AISettings.from_settings(settings))
