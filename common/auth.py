"""Who is calling: user JWTs, task-bound callback tokens, and signed step deliveries."""

from __future__ import annotations

import hashlib
import hmac
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt

from common.config import Settings
from common.errors import IdentityProviderUnavailable, Unauthorized

if TYPE_CHECKING:
    from common.runtime import Clock

CALLBACK_AUDIENCE = "planter-progress"
SIGNATURE_HEADER = "X-Planter-Signature"
# Never read from the token: a fixed allow-list per key type, so no "none" and no HS/RS confusion.
_ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")
_SYMMETRIC_ALGORITHMS = ("HS256",)


@dataclass(frozen=True)
class Identity:
    """A verified user token: who it names."""

    email: str
    subject: str | None


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header value, or 401."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer token is required")
    return token.strip()


def _decode(token: str, key: Any, algorithms: tuple[str, ...], settings: Settings, **options: Any) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=list(algorithms),
        leeway=settings.jwt_leeway_seconds,
        options={"require": ["exp"], **options.pop("options", {})},  # type: ignore[arg-type]
        **options,
    )
    return claims


_TOKEN_CACHE_SECONDS = 60.0
_TOKEN_CACHE_LIMIT = 10_000


class _VerifiedTokens:
    """Tokens this instance verified in the last minute, so that a page's burst of requests pays
    PyJWT once (0.1-0.2 ms each, 5-9 % of an authenticated request's CPU: BENCHMARKS.md).

    Keyed by the whole token text (a changed byte is another key, verified afresh) and the
    settings it was verified under; an entry never outlives the token's ``exp`` nor
    ``_TOKEN_CACHE_SECONDS``, so a key revoked at the identity provider stops working within a
    minute. Only successes are kept: a refused token is refused again on every request.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._entries: dict[tuple[Any, ...], tuple[float, Any]] = {}

    def get(self, key: tuple[Any, ...]) -> tuple[bool, Any]:
        hit = self._entries.get(key)
        if hit is not None and hit[0] > self._clock.time():
            return True, hit[1]
        return False, None

    def put(self, key: tuple[Any, ...], expires_at: Any, value: Any) -> None:
        try:  # PyJWT accepts an exp that int() takes, "1700000000" included
            until = min(self._clock.time() + _TOKEN_CACHE_SECONDS, float(expires_at))
        except (TypeError, ValueError):
            return  # no usable exp: not remembered, verified again next time
        if len(self._entries) >= _TOKEN_CACHE_LIMIT:
            self._entries.clear()  # bounded memory; a dict swap is atomic under the GIL
        self._entries[key] = (until, value)


class TokenVerifier:
    """Who is calling, for one instance (the runtime holds it): its settings, the tokens it verified
    in the last minute and its JWKS client, built on first use."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self._verified = _VerifiedTokens(clock)
        self._jwks: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()

    def jwks_client(self) -> jwt.PyJWKClient:
        """The instance's JWKS client, made on first use."""
        # One client per instance: it caches the key set and refetches once for an unknown kid. No
        # per-kid cache (cache_keys): it never expires, so a key the provider revoked would stay valid.
        with self._lock:
            if self._jwks is None:
                self._jwks = jwt.PyJWKClient(self.settings.jwt_jwks_url, lifespan=3600, timeout=5)
            return self._jwks

    def user(self, token: str) -> Identity:
        """Verify a user's JWT (HS256 with JWT_SECRET, or RS256/ES256 against the JWKS)."""
        found, identity = self._verified.get(("user", token))
        if found:
            return identity  # type: ignore[no-any-return]
        identity, expires_at = _verify_user_token(token, self.settings, self.jwks_client)
        self._verified.put(("user", token), expires_at, identity)
        return identity

    def remembers(self, token: str) -> bool:
        """Whether a user token is still remembered as verified (answered without PyJWT)."""
        return bool(self._verified.get(("user", token))[0])

    def callback(self, token: str, task_id: str) -> None:
        """Accept only a callback token bound to ``task_id``; anything else is 401."""
        key = ("callback", token, task_id)
        if self._verified.get(key)[0]:
            return
        settings = self.settings
        try:
            claims = _decode(
                token, settings.step_signing_secret, _SYMMETRIC_ALGORITHMS, settings, audience=CALLBACK_AUDIENCE
            )
        except jwt.PyJWTError as error:
            raise Unauthorized(_reason(error)) from error
        if not _same_uuid(claims.get("sub"), task_id):
            raise Unauthorized("the token is bound to another task")
        self._verified.put(key, claims.get("exp"), None)

    def step_caller(self, signature: str | None, authorization: str | None, body: bytes) -> None:
        """Refuse a step or scheduler request that our own queue or scheduler did not send."""
        settings = self.settings
        if not signature or not hmac.compare_digest(signature, sign_body(body, settings.step_signing_secret)):
            raise Unauthorized("the request signature is missing or wrong")
        if settings.verify_oidc:
            _verify_oidc(bearer_token(authorization), settings)


def _verify_user_token(
    token: str, settings: Settings, jwks_client: Callable[[], jwt.PyJWKClient]
) -> tuple[Identity, Any]:
    try:
        header = jwt.get_unverified_header(token)
        alg = header.get("alg")
        extra: dict[str, Any] = {}
        if settings.jwt_issuer:
            extra["issuer"] = settings.jwt_issuer
        if settings.jwt_audience:
            extra["audience"] = settings.jwt_audience
        else:
            extra["options"] = {"verify_aud": False}
        if alg in _ASYMMETRIC_ALGORITHMS and settings.jwt_jwks_url:
            # The PyJWK itself, not its .key: PyJWT then verifies with the algorithm the key was
            # published for, so an ES256 header naming an RSA kid is refused (401), not a TypeError (500).
            signing_key = jwks_client().get_signing_key_from_jwt(token)
            claims = _decode(token, signing_key, _ASYMMETRIC_ALGORITHMS, settings, **extra)
        elif alg in _SYMMETRIC_ALGORITHMS and settings.jwt_secret:
            claims = _decode(token, settings.jwt_secret, _SYMMETRIC_ALGORITHMS, settings, **extra)
        else:
            raise Unauthorized("the token's algorithm is not accepted")
        if claims.get("aud") == CALLBACK_AUDIENCE:
            raise Unauthorized("a callback token cannot act as a user")
    except jwt.PyJWKClientConnectionError as error:
        raise IdentityProviderUnavailable() from error
    except jwt.PyJWTError as error:
        raise Unauthorized(_reason(error)) from error
    email = claims.get("email")
    email = email.strip().lower() if isinstance(email, str) else ""
    # What the users table accepts (3-320 chars), printable only: a NUL, a lone surrogate or a
    # too-short address would otherwise fail in PostgreSQL and answer 500 instead of 401.
    if "@" not in email or not 3 <= len(email) <= 320 or not email.isprintable():
        raise Unauthorized("the token carries no email claim")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.isprintable() or len(subject) > 255:
        subject = None
    return Identity(email=email, subject=subject), claims.get("exp")


def _reason(error: jwt.PyJWTError) -> str:
    if isinstance(error, jwt.ExpiredSignatureError):
        return "the token has expired"
    if isinstance(error, jwt.ImmatureSignatureError):
        return "the token is not valid yet"
    if isinstance(error, jwt.InvalidAudienceError):
        return "the token is for another audience"
    if isinstance(error, jwt.InvalidIssuerError):
        return "the token is from another issuer"
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"the token lacks the {error.claim!r} claim"
    if isinstance(error, jwt.PyJWKClientError):
        return "the token's signing key is unknown"
    return "the token is invalid"


def issue_callback_token(task_id: str, settings: Settings, now: float, ttl_seconds: int | None = None) -> str:
    """A token that lets an outside worker post progress for this one task, and nothing else."""
    now = int(now)
    ttl = ttl_seconds if ttl_seconds is not None else settings.callback_token_ttl_seconds
    claims = {"sub": task_id, "aud": CALLBACK_AUDIENCE, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, settings.step_signing_secret, algorithm="HS256")


def _same_uuid(subject: Any, task_id: str) -> bool:
    # The path may spell the id in capitals or without dashes (it is still the same task).
    try:
        return isinstance(subject, str) and uuid.UUID(subject) == uuid.UUID(task_id)
    except ValueError:
        return False


def sign_body(body: bytes, secret: str) -> str:
    """The ``X-Planter-Signature`` value of a step request body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _verify_oidc(token: str, settings: Settings) -> None:
    # Imported lazily: only the internal functions in production verify Google-signed tokens.
    import google.auth.transport.requests
    from google.oauth2 import id_token

    try:
        claims = id_token.verify_oauth2_token(  # type: ignore[no-untyped-call]
            token, google.auth.transport.requests.Request(), audience=settings.oidc_audience or settings.step_url
        )
    except ValueError as error:
        raise Unauthorized("the OIDC token is invalid") from error
    if claims.get("iss") not in {"https://accounts.google.com", "accounts.google.com"}:
        raise Unauthorized("the OIDC token is from another issuer")
    if settings.oidc_service_account and claims.get("email") != settings.oidc_service_account:
        raise Unauthorized("the OIDC token names another service account")
    if not claims.get("email_verified", False):
        raise Unauthorized("the OIDC token's email is not verified")
