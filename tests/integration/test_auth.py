"""Every way a bearer token can be bad is a 401 problem+json; JWKS mode against a local key set.

The JWKS is served by an http.server thread on 127.0.0.1 with keys generated per session, so
the real PyJWKClient fetches, caches and refreshes exactly as it does against Firebase/Auth0.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from common import auth
from common.runtime import Runtime
from dev.gateway import create_app
from functions.routes import ROUTES
from tests.conftest import TEST_JWT_SECRET, TEST_STEP_SECRET, ManualClock, callback_token, make_token, with_settings

LIST = "/api/v1/tasks"
ISSUER = "https://issuer.example.test/"
AUDIENCE = "planter-test-audience"
INVALID_TOKEN = 'Bearer error="invalid_token"'


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _segment(obj: dict[str, Any]) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def _claims(email: str = "alice@example.test", **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    body = {"email": email, "sub": f"sub-{email}", "iat": now, "exp": now + 600, **extra}
    return {k: v for k, v in body.items() if v is not None}


def _hs256_by_hand(claims: dict[str, Any], key: bytes, header: dict[str, Any] | None = None) -> str:
    """An HS256 JWT signed with any bytes (PyJWT refuses a PEM as an HMAC key, an attacker does not)."""
    signing_input = f"{_segment(header or {'alg': 'HS256', 'typ': 'JWT'})}.{_segment(claims)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _hs512(claims: dict[str, Any]) -> str:
    with warnings.catch_warnings():  # the suite's secret is short for SHA-512; the point is the algorithm
        warnings.simplefilter("ignore")
        return jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS512")


def _unsigned(claims: dict[str, Any], header: dict[str, Any]) -> str:
    return f"{_segment(header)}.{_segment(claims)}."


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_invalid_token(response: Any) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"] == INVALID_TOKEN
    body = response.get_json()
    assert body["status"] == 401
    assert set(body) >= {"type", "title", "status", "detail"}


def user_rows(engine: sa.Engine) -> list[tuple[str, str | None]]:
    with engine.connect() as conn:
        return [(r.email, r.subject) for r in conn.execute(sa.text("SELECT email, subject FROM users ORDER BY email"))]


# --- HS256 (JWT_SECRET) --------------------------------------------------------------------------


def _bad_hs256_headers() -> list[tuple[str, str | None]]:
    """(case, Authorization header or None); the time margins are hours, never seconds."""
    now = int(time.time())
    good = make_token()
    cases: list[tuple[str | None, str]] = [
        (None, "missing-header"),
        ("", "empty-header"),
        ("Bearer", "bearer-without-token"),
        ("Bearer    ", "bearer-blank-token"),
        (f"Basic {base64.b64encode(b'alice:secret').decode()}", "basic-scheme"),
        (f"Token {good}", "token-scheme"),
        (good, "no-scheme"),
        ("Bearer " + make_token(secret="another-secret-that-is-long-enough-0123456789"), "wrong-key"),
        ("Bearer " + make_token(exp=now - 3600), "expired"),
        ("Bearer " + make_token(exp=None), "missing-exp"),
        ("Bearer " + make_token(exp="tomorrow"), "non-numeric-exp"),
        ("Bearer " + make_token(nbf=now + 3600), "future-nbf"),
        ("Bearer " + make_token(email=None), "no-email"),  # type: ignore[arg-type]
        ("Bearer " + make_token(email="not-an-email"), "email-without-at"),
        ("Bearer " + make_token(email=["alice@example.test"]), "email-not-a-string"),  # type: ignore[arg-type]
        ("Bearer " + make_token(email="a\x00lice@example.test"), "email-with-nul"),
        ("Bearer " + make_token(email="a\ud800lice@example.test"), "email-with-lone-surrogate"),
        ("Bearer " + make_token(email=" @ "), "email-too-short"),
        ("Bearer " + make_token(email="a" * 320 + "@example.test"), "email-too-long"),
        ("Bearer " + _unsigned(_claims(), {"alg": "none", "typ": "JWT"}), "alg-none"),
        ("Bearer " + f"{_segment({'alg': 'None', 'typ': 'JWT'})}.{_segment(_claims())}.", "alg-None-capitalised"),
        ("Bearer " + f"{_segment({'typ': 'JWT'})}.{_segment(_claims())}.", "alg-missing"),
        ("Bearer " + _hs512(_claims()), "alg-hs512-with-the-right-secret"),
        (
            "Bearer "
            + _hs256_by_hand(_claims(), TEST_JWT_SECRET.encode(), {"alg": "HS256", "typ": "JWT", "crit": ["x"]}),
            "unknown-crit-header",
        ),
        ("Bearer " + good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"), "tampered-signature"),
        ("Bearer " + good.rsplit(".", 1)[0], "signature-stripped"),
        ("Bearer " + good.rsplit(".", 1)[0] + ".", "signature-empty"),
        ("Bearer not-a-jwt", "garbage"),
        ("Bearer a.b.c", "garbage-three-parts"),
        ("Bearer " + "eyJ" * 50, "garbage-base64"),
        ("Bearer ####.####.####", "garbage-symbols"),
        ("Bearer " + f"{_segment({'alg': 'HS256'})}.bm90IGpzb24.sig", "payload-not-json"),
        ("Bearer " + f"{_b64(b'[1,2]')}.{_segment(_claims())}.sig", "header-not-an-object"),
        ("Bearer " + jwt.encode(_claims(), TEST_STEP_SECRET, algorithm="HS256"), "signed-with-step-secret"),
        (
            "Bearer " + make_token(aud=auth.CALLBACK_AUDIENCE),
            "callback-audience-signed-with-user-secret",
        ),
    ]
    return [(name, header) for header, name in cases]


def test_bad_token_is_401_invalid_token(client: Any, engine: sa.Engine) -> None:
    # One database for all the cases (each is a pure refusal); every failing case is named.
    wrong: dict[str, str] = {}
    for name, authorization in _bad_hs256_headers():
        headers = {} if authorization is None else {"Authorization": authorization}
        try:
            assert_invalid_token(client.get(LIST, headers=headers))
        except AssertionError as error:
            wrong[name] = str(error).splitlines()[0]
    assert wrong == {}
    assert user_rows(engine) == []  # nothing about a refused caller is stored


def test_good_token_passes_and_creates_the_user_once(client: Any, engine: sa.Engine) -> None:
    # The header scheme is case-insensitive (RFC 9110); the email is stored lowercased.
    response = client.get(LIST, headers={"Authorization": "bearer " + make_token("Alice@Example.TEST")})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"tasks": [], "next_cursor": None}
    assert client.get(LIST, headers=_bearer(make_token("alice@example.test"))).status_code == 200
    assert user_rows(engine) == [("alice@example.test", "sub-Alice@Example.TEST")]


def test_small_clock_skew_is_tolerated(client: Any) -> None:
    # Expired 5 s ago and valid from 5 s in the future: inside the 30 s leeway.
    now = int(time.time())
    assert client.get(LIST, headers=_bearer(make_token(exp=now - 5, nbf=now + 5))).status_code == 200


def test_callback_token_cannot_act_as_a_user(client: Any, auth_header: Any, enqueued: Any) -> None:
    task_id = client.post("/api/v1/projects", json={"project_name": "cb"}, headers=auth_header()).get_json()["task_id"]
    callback = callback_token(task_id)
    for method, path in (
        ("GET", LIST),
        ("GET", f"/api/v1/tasks/{task_id}"),
        ("POST", f"/api/v1/tasks/{task_id}/cancel"),
    ):
        assert_invalid_token(client.open(path, method=method, headers=_bearer(callback)))
    # ...and the other way round: a user's token is not a callback token.
    response = client.post(f"/api/v1/tasks/{task_id}/progress", json={"message": "hi"}, headers=auth_header())
    assert_invalid_token(response)


def test_every_user_route_requires_a_token(client: Any, engine: sa.Engine) -> None:
    user_routes = [r for r in ROUTES if r.auth == "user"]
    assert len(user_routes) >= 5
    for route in user_routes:
        path = route.path.replace("{task_id}", str(uuid.uuid4()))
        kwargs: dict[str, Any] = {"json": {"project_name": "x"}} if route.method == "POST" else {}
        for headers in ({}, _bearer("garbage")):
            response = client.open(path, method=route.method, headers=headers, **kwargs)
            assert response.status_code == 401, (route.method, route.path, headers)
            assert_invalid_token(response)
    assert user_rows(engine) == []


def test_issuer_and_audience_are_checked_when_configured(client_with: Any) -> None:
    client = client_with(jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    refused: dict[str, dict[str, Any]] = {
        "wrong-iss": {"iss": "https://evil.example.test/", "aud": AUDIENCE},
        "missing-iss": {"aud": AUDIENCE},
        "wrong-aud": {"iss": ISSUER, "aud": "someone-else"},
        "wrong-aud-list": {"iss": ISSUER, "aud": ["someone-else", "another"]},
        "missing-aud": {"iss": ISSUER},
    }
    for name, claims in refused.items():
        response = client.get(LIST, headers=_bearer(make_token(**claims)))
        assert response.status_code == 401, name
        assert_invalid_token(response)
    assert client.get(LIST, headers=_bearer(make_token(iss=ISSUER, aud=AUDIENCE))).status_code == 200
    assert client.get(LIST, headers=_bearer(make_token(iss=ISSUER, aud=["other", AUDIENCE]))).status_code == 200


def test_concurrent_first_requests_create_one_user(client: Any, runtime: Runtime, engine: sa.Engine) -> None:
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    token = make_token("newcomer@example.test")
    statuses: list[int] = []
    app = create_app(runtime)

    def first_request() -> None:
        own_client = app.test_client()
        barrier.wait()
        statuses.append(own_client.get(LIST, headers=_bearer(token)).status_code)

    threads = [threading.Thread(target=first_request) for _ in range(threads_count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * threads_count
    assert user_rows(engine) == [("newcomer@example.test", "sub-newcomer@example.test")]


# --- JWKS (RS256 / ES256) ------------------------------------------------------------------------


class KeySet:
    """The keys of a fake identity provider and the JWKS endpoint that publishes them."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.published: list[dict[str, Any]] = []
        self.fetches = 0
        self.lock = threading.Lock()
        self.reset()

    @staticmethod
    def jwk(public_key: Any, kid: str, alg: str) -> dict[str, Any]:
        algorithm = RSAAlgorithm if alg.startswith("RS") else ECAlgorithm
        data: dict[str, Any] = algorithm.to_jwk(public_key, as_dict=True)
        return {**data, "kid": kid, "alg": alg, "use": "sig"}

    def reset(self) -> None:
        with self.lock:
            self.published = [
                self.jwk(self.rsa.public_key(), "rsa-1", "RS256"),
                self.jwk(self.ec.public_key(), "ec-1", "ES256"),
            ]
            self.fetches = 0

    def rsa_public_pem(self) -> bytes:
        return self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class _Handler(http.server.BaseHTTPRequestHandler):
    keys: KeySet

    def do_GET(self) -> None:
        with self.keys.lock:
            self.keys.fetches += 1
            body = json.dumps({"keys": self.keys.published}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def key_set() -> Iterator[tuple[KeySet, str]]:
    keys = KeySet()
    handler = type("Handler", (_Handler,), {"keys": keys})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield keys, f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


@pytest.fixture
def jwks(key_set: tuple[KeySet, str]) -> KeySet:
    keys, _ = key_set
    keys.reset()
    return keys


@pytest.fixture
def jwks_runtime(runtime: Runtime, key_set: tuple[KeySet, str]) -> Runtime:
    """JWKS-only mode, as in production with Firebase: no JWT_SECRET; issuer and audience set. A
    fresh instance: no key set cached yet."""
    _, url = key_set
    return with_settings(runtime, jwt_secret="", jwt_jwks_url=url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)


@pytest.fixture
def jwks_client(jwks_runtime: Runtime) -> Any:
    return create_app(jwks_runtime).test_client()


def _signed(key: Any, alg: str, kid: str | None, email: str = "alice@example.test", **claims: Any) -> str:
    headers = {"kid": kid} if kid is not None else {}
    body = _claims(email, **{"iss": ISSUER, "aud": AUDIENCE, **claims})
    return jwt.encode(body, key, algorithm=alg, headers=headers)


def test_jwks_rs256_and_es256_tokens_are_accepted(jwks_client: Any, jwks: KeySet, engine: sa.Engine) -> None:
    rs = jwks_client.get(LIST, headers=_bearer(_signed(jwks.rsa, "RS256", "rsa-1", "rs@example.test")))
    assert rs.status_code == 200, rs.get_json()
    es = jwks_client.get(LIST, headers=_bearer(_signed(jwks.ec, "ES256", "ec-1", "es@example.test")))
    assert es.status_code == 200, es.get_json()
    assert user_rows(engine) == [("es@example.test", "sub-es@example.test"), ("rs@example.test", "sub-rs@example.test")]
    assert jwks.fetches == 1  # the key set is cached by the instance


def _bad_jwks_tokens() -> list[tuple[str, Callable[[KeySet], str]]]:
    def case(name: str, mint: Callable[[KeySet], str]) -> tuple[str, Callable[[KeySet], str]]:
        return name, mint

    now = int(time.time())
    return [
        case("hs256-signed-with-rsa-public-pem", lambda k: _hs256_by_hand(_claims(), k.rsa_public_pem())),
        case(
            "hs256-with-rsa-kid-signed-with-public-pem",
            lambda k: _hs256_by_hand(
                _claims(iss=ISSUER, aud=AUDIENCE), k.rsa_public_pem(), {"alg": "HS256", "kid": "rsa-1"}
            ),
        ),
        case("signed-by-another-key-with-a-known-kid", lambda k: _signed(k.other_rsa, "RS256", "rsa-1")),
        case("unknown-kid", lambda k: _signed(k.other_rsa, "RS256", "rotated-away")),
        case("no-kid", lambda k: _signed(k.rsa, "RS256", None)),
        case("es256-header-with-the-rsa-kid", lambda k: _signed(k.ec, "ES256", "rsa-1")),
        case("rs256-header-with-the-ec-kid", lambda k: _signed(k.rsa, "RS256", "ec-1")),
        case("rs512-not-allowed", lambda k: _signed(k.rsa, "RS512", "rsa-1")),
        case("ps256-not-allowed", lambda k: _signed(k.rsa, "PS256", "rsa-1")),
        case(
            "alg-none-with-a-known-kid",
            lambda k: _unsigned(_claims(), {"alg": "none", "kid": "rsa-1"}),
        ),
        case("expired", lambda k: _signed(k.rsa, "RS256", "rsa-1", exp=now - 3600)),
        case("missing-exp", lambda k: _signed(k.rsa, "RS256", "rsa-1", exp=None)),
        case("future-nbf", lambda k: _signed(k.rsa, "RS256", "rsa-1", nbf=now + 3600)),
        case("wrong-iss", lambda k: _signed(k.rsa, "RS256", "rsa-1", iss="https://evil.example.test/")),
        case("wrong-aud", lambda k: _signed(k.rsa, "RS256", "rsa-1", aud="another-app")),
        case("no-email", lambda k: _signed(k.ec, "ES256", "ec-1", email=None)),  # type: ignore[arg-type]
        case("hs256-with-the-step-secret", lambda k: jwt.encode(_claims(), TEST_STEP_SECRET, algorithm="HS256")),
    ]


def test_jwks_bad_token_is_401(jwks_client: Any, jwks: KeySet, engine: sa.Engine) -> None:
    wrong: dict[str, str] = {}
    for name, mint in _bad_jwks_tokens():
        try:
            assert_invalid_token(jwks_client.get(LIST, headers=_bearer(mint(jwks))))
        except AssertionError as error:
            wrong[name] = str(error).splitlines()[0]
    assert wrong == {}
    assert user_rows(engine) == []


def test_hs256_signed_with_public_pem_fails_when_a_secret_is_configured_too(
    jwks_runtime: Runtime, jwks: KeySet
) -> None:
    # Mixed mode (JWKS for users, JWT_SECRET for self-issued tokens): the PEM is still no HMAC key.
    jwks_client = create_app(with_settings(jwks_runtime, jwt_secret=TEST_JWT_SECRET)).test_client()
    token = _hs256_by_hand(_claims(iss=ISSUER, aud=AUDIENCE), jwks.rsa_public_pem(), {"alg": "HS256", "kid": "rsa-1"})
    assert_invalid_token(jwks_client.get(LIST, headers=_bearer(token)))
    # ...while the genuine self-issued token and the provider's token both pass.
    assert jwks_client.get(LIST, headers=_bearer(make_token(iss=ISSUER, aud=AUDIENCE))).status_code == 200
    assert jwks_client.get(LIST, headers=_bearer(_signed(jwks.rsa, "RS256", "rsa-1"))).status_code == 200


def test_asymmetric_token_without_a_jwks_configured_is_401(client: Any, key_set: tuple[KeySet, str]) -> None:
    keys, _ = key_set
    token = jwt.encode(_claims(), keys.rsa, algorithm="RS256", headers={"kid": "rsa-1"})
    assert_invalid_token(client.get(LIST, headers=_bearer(token)))


def test_unknown_kid_refreshes_the_key_set_once_then_401(jwks_client: Any, jwks_runtime: Runtime, jwks: KeySet) -> None:
    assert jwks_client.get(LIST, headers=_bearer(_signed(jwks.rsa, "RS256", "rsa-1"))).status_code == 200
    assert jwks.fetches == 1
    # Past the refresh cool-down (which only rate-limits refreshes), an unknown kid refetches once.
    jwks_runtime.tokens.jwks_client().cooldown_duration = 0
    assert_invalid_token(jwks_client.get(LIST, headers=_bearer(_signed(jwks.other_rsa, "RS256", "unknown"))))
    assert jwks.fetches == 2


def test_a_rotated_in_key_is_picked_up_by_the_one_refresh(
    jwks_client: Any, jwks_runtime: Runtime, jwks: KeySet
) -> None:
    assert jwks_client.get(LIST, headers=_bearer(_signed(jwks.rsa, "RS256", "rsa-1"))).status_code == 200
    jwks_runtime.tokens.jwks_client().cooldown_duration = 0
    with jwks.lock:
        jwks.published.append(KeySet.jwk(jwks.other_rsa.public_key(), "rsa-2", "RS256"))
    response = jwks_client.get(LIST, headers=_bearer(_signed(jwks.other_rsa, "RS256", "rsa-2")))
    assert response.status_code == 200, response.get_json()
    assert jwks.fetches == 2


def test_unknown_kids_cannot_make_the_instance_hammer_the_provider(jwks_client: Any, jwks: KeySet) -> None:
    assert jwks_client.get(LIST, headers=_bearer(_signed(jwks.rsa, "RS256", "rsa-1"))).status_code == 200
    for i in range(10):
        assert_invalid_token(jwks_client.get(LIST, headers=_bearer(_signed(jwks.other_rsa, "RS256", f"made-up-{i}"))))
    assert jwks.fetches <= 2


def test_a_key_removed_from_the_jwks_is_refused_once_the_set_is_refetched(
    jwks_client: Any, jwks_runtime: Runtime, jwks: KeySet, clock: ManualClock
) -> None:
    token = _signed(jwks.rsa, "RS256", "rsa-1")
    assert jwks_client.get(LIST, headers=_bearer(token)).status_code == 200
    with jwks.lock:  # the provider revokes rsa-1
        jwks.published = [k for k in jwks.published if k["kid"] != "rsa-1"]
    key_client = jwks_runtime.tokens.jwks_client()
    assert key_client.jwk_set_cache is not None
    key_client.jwk_set_cache.put(None)  # what the cache lifespan running out does
    # A token the instance has not verified yet is refused at once...
    assert_invalid_token(jwks_client.get(LIST, headers=_bearer(_signed(jwks.rsa, "RS256", "rsa-1", jti="new"))))
    # ...and the one it verified a moment ago is still remembered, for at most a minute.
    assert jwks_client.get(LIST, headers=_bearer(token)).status_code == 200
    clock.advance(61)
    assert_invalid_token(jwks_client.get(LIST, headers=_bearer(token)))
    assert jwks.fetches == 2


def test_a_token_is_remembered_for_a_minute_at_most_and_never_past_its_exp(
    client: Any, runtime: Runtime, clock: ManualClock
) -> None:
    now = clock.time()
    brief = make_token("brief@example.test", exp=int(now) + 5)
    spelt = make_token("spelt@example.test", exp=str(int(now) + 5))  # PyJWT takes an exp int() takes
    long = make_token("long@example.test", exp=int(now) + 600)
    assert not any(runtime.tokens.remembers(t) for t in (brief, spelt, long))
    for token in (brief, spelt, long, brief, spelt, long):
        assert client.get(LIST, headers=_bearer(token)).status_code == 200
    assert all(runtime.tokens.remembers(t) for t in (brief, spelt, long))  # the repeats need no PyJWT
    clock.advance(6)  # past the brief tokens' exp (on the instance's clock; PyJWT's leeway still accepts them)
    assert [runtime.tokens.remembers(t) for t in (brief, spelt, long)] == [False, False, True]
    for token in (brief, spelt, long):
        assert client.get(LIST, headers=_bearer(token)).status_code == 200
    clock.advance(55)  # past the minute
    assert not runtime.tokens.remembers(long)
    assert client.get(LIST, headers=_bearer(long)).status_code == 200
    assert runtime.tokens.remembers(long)


def test_a_tampered_copy_of_a_remembered_token_is_refused(client: Any) -> None:
    token = make_token("tamper@example.test")
    assert client.get(LIST, headers=_bearer(token)).status_code == 200
    header, payload, signature = token.split(".")
    forged = base64.urlsafe_b64encode(
        json.dumps({"email": "victim@example.test", "exp": int(time.time()) + 600}).encode()
    ).rstrip(b"=")
    assert_invalid_token(client.get(LIST, headers=_bearer(f"{header}.{forged.decode()}.{signature}")))
    assert_invalid_token(client.get(LIST, headers=_bearer(f"{header}.{payload}.{signature[:-2]}AA")))


def test_unreachable_jwks_is_503_not_401(client_with: Any, key_set: Any) -> None:
    keys, _ = key_set
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = client_with(jwt_secret="", jwt_jwks_url=f"http://127.0.0.1:{port}/jwks.json")
    response = client.get(LIST, headers=_bearer(jwt.encode(_claims(), keys.rsa, "RS256", headers={"kid": "k"})))
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert "Retry-After" in response.headers
    # Said as what happened: the database is fine, the identity provider is not.
    assert response.get_json()["type"].endswith("/identity-provider-unavailable")
