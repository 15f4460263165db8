"""GitHub App authentication against the stand-in: an RS256 app JWT buys installation tokens,
which are cached per organization until five minutes before they expire."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from common.github.access import AppAccess
from common.github.app_auth import AppAuth, AppNotInstalled
from common.github.client import GitHubClient, GitHubRefused
from dev.standins.github.server import Running, start
from dev.standins.github.templates import PLANTER_ORG


class Clock:
    """A clock the test moves by hand (passed in; nothing is patched)."""

    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def github(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start(tmp_path_factory.mktemp("github-app"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem.decode()


def test_installation_tokens_are_cached_until_shortly_before_they_expire(
    github: Running, private_key: str, tmp_path: pathlib.Path
) -> None:
    clock = Clock()
    auth = AppAuth(github.base_url, "12345", private_key, clock=clock)
    claims = jwt.decode(auth.app_jwt(), options={"verify_signature": False})
    assert claims["iss"] == "12345" and claims["exp"] - claims["iat"] <= 600

    first = auth.token_for(PLANTER_ORG)
    issued = github.app.tokens_issued
    clock.now += 3600 - 301  # still more than five minutes left: the cached token
    assert auth.token_for(PLANTER_ORG) == first
    assert github.app.tokens_issued == issued
    clock.now += 2  # within five minutes of expiry: a new one
    assert auth.token_for(PLANTER_ORG) != first
    assert github.app.tokens_issued == issued + 1

    # The client acting on the organization sends the installation token.
    access = AppAccess(auth)
    org = access.client(PLANTER_ORG).request("GET", "/orgs/{org}", org=PLANTER_ORG)
    assert org["login"] == PLANTER_ORG


def test_an_organization_without_the_app_has_no_token(github: Running, private_key: str) -> None:
    github.app.state.add_org("bare-org", installed=False)
    auth = AppAuth(github.base_url, "12345", private_key)
    with pytest.raises(AppNotInstalled):
        auth.token_for("bare-org")
    assert AppAccess(auth).installation("bare-org") is None


def test_only_the_app_jwt_buys_tokens(github: Running) -> None:
    with pytest.raises(GitHubRefused) as refused:
        GitHubClient(github.base_url, lambda: "not-a-jwt").request(
            "POST", "/app/installations/{iid}/access_tokens", iid=1
        )
    assert refused.value.status == 401
