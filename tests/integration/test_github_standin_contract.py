"""The GitHub stand-in answers what GitHub answers: every body the live provider reads is
validated against githubkit's pydantic models of GitHub's published OpenAPI description
(REST API version 2022-11-28, the one the client sends), errors included. A field renamed or
dropped in the stand-in (or a model the provider relies on changing) fails here."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from githubkit_schemas.v2022_11_28 import models
from pydantic import TypeAdapter

from dev.standins.github.server import Running, start
from dev.standins.github.templates import PLANTER_ORG
from tests.live_support import TEMPLATE, rest


@pytest.fixture(scope="module")
def github(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start(tmp_path_factory.mktemp("github-contract"))
    yield running
    running.stop()


def _valid(model: Any, response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    return TypeAdapter(model).validate_python(response.json())


def test_every_body_the_provider_reads_matches_githubs_models(github: Running, tmp_path: pathlib.Path) -> None:
    with rest(github.base_url) as http:
        _valid(models.OrganizationFull, http.get(f"/orgs/{PLANTER_ORG}"), 200)
        _valid(models.Installation, http.get(f"/orgs/{PLANTER_ORG}/installation"), 200)
        claims = {"iss": "1", "iat": 0, "exp": 2**31}
        app_jwt = jwt.encode(claims, "not-the-app-key-32-bytes-at-least", algorithm="HS256")
        bought = http.post("/app/installations/1001/access_tokens", headers={"Authorization": f"Bearer {app_jwt}"})
        _valid(models.InstallationToken, bought, 201)
        made = _valid(
            models.FullRepository,
            http.post(f"/repos/{TEMPLATE}/generate", json={"owner": PLANTER_ORG, "name": "contract", "private": True}),
            201,
        )
        assert made.full_name == f"{PLANTER_ORG}/contract" and made.private is True
        _valid(models.FullRepository, http.get(f"/repos/{PLANTER_ORG}/contract"), 200)
        base = f"/repos/{PLANTER_ORG}/contract/git"
        ref = _valid(models.GitRef, http.get(f"{base}/ref/heads/main"), 200)
        commit = _valid(models.GitCommit, http.get(f"{base}/commits/{ref.object_.sha}"), 200)
        tree = _valid(models.GitTree, http.get(f"{base}/trees/{commit.tree.sha}", params={"recursive": "1"}), 200)
        readme = next(e for e in tree.tree if e.path == "README.md")
        _valid(models.Blob, http.get(f"{base}/blobs/{readme.sha}"), 200)
        blob = _valid(models.ShortBlob, http.post(f"{base}/blobs", json={"content": "hi", "encoding": "utf-8"}), 201)
        entry = {"path": "NOTES.md", "mode": "100644", "type": "blob", "sha": blob.sha}
        new_tree = _valid(
            models.GitTree, http.post(f"{base}/trees", json={"base_tree": commit.tree.sha, "tree": [entry]}), 201
        )
        body = {"message": "notes", "tree": new_tree.sha, "parents": [commit.sha]}
        new_commit = _valid(models.GitCommit, http.post(f"{base}/commits", json=body), 201)
        _valid(models.GitRef, http.patch(f"{base}/refs/heads/main", json={"sha": new_commit.sha, "force": False}), 200)
        issue_body = {"title": "First issue", "body": "text", "labels": ["planter"]}
        issue = _valid(models.Issue, http.post(f"/repos/{PLANTER_ORG}/contract/issues", json=issue_body), 201)
        _valid(list[models.Issue], http.get(f"/repos/{PLANTER_ORG}/contract/issues", params={"labels": "planter"}), 200)
        _valid(models.Issue, http.get(f"/repos/{PLANTER_ORG}/contract/issues/{issue.number}"), 200)
        # Archiving (teardown): the repository says so, and refuses writes as GitHub does.
        archived = _valid(
            models.FullRepository, http.patch(f"/repos/{PLANTER_ORG}/contract", json={"archived": True}), 200
        )
        assert archived.archived is True
        assert _valid(models.FullRepository, http.get(f"/repos/{PLANTER_ORG}/contract"), 200).archived is True
        refused = http.post(f"{base}/blobs", json={"content": "late", "encoding": "utf-8"})
        assert refused.status_code == 403 and refused.json()["message"] == "Repository was archived so is read-only."


def test_errors_come_back_in_githubs_shapes_and_statuses(github: Running) -> None:
    with rest(github.base_url) as http:
        _valid(models.BasicError, http.get("/orgs/nobody-here"), 404)
        _valid(models.BasicError, http.get("/orgs/nobody-here/installation"), 404)
        http.post(f"/repos/{TEMPLATE}/generate", json={"owner": PLANTER_ORG, "name": "taken"})
        taken = _valid(
            models.ValidationError,
            http.post(f"/repos/{TEMPLATE}/generate", json={"owner": PLANTER_ORG, "name": "taken"}),
            422,
        )
        assert "already exists" in str(taken.errors)
        base = f"/repos/{PLANTER_ORG}/taken/git"
        head = http.get(f"{base}/ref/heads/main").json()["object"]["sha"]
        parent = http.get(f"{base}/commits/{head}").json()
        orphan = http.post(
            f"{base}/commits", json={"message": "x", "tree": parent["tree"]["sha"], "parents": []}
        ).json()
        # force: false and not a fast-forward: refused, the branch kept.
        _valid(
            models.BasicError, http.patch(f"{base}/refs/heads/main", json={"sha": orphan["sha"], "force": False}), 422
        )
        assert http.get(f"{base}/ref/heads/main").json()["object"]["sha"] == head


def test_without_a_token_a_private_repository_is_not_found_as_on_github(github: Running) -> None:
    """github.com answers 404 to a caller who may not see a private repository (not 401 or 403: that
    would reveal that it exists), reads what is public without a token, and refuses a bad token."""
    with rest(github.base_url) as http:
        http.post(f"/repos/{TEMPLATE}/generate", json={"owner": PLANTER_ORG, "name": "hidden", "private": True})
        head = http.get(f"/repos/{PLANTER_ORG}/hidden/git/ref/heads/main").json()["object"]["sha"]
    with httpx.Client(base_url=github.base_url) as anonymous:
        for path in (f"/repos/{PLANTER_ORG}/hidden", f"/repos/{PLANTER_ORG}/hidden/git/commits/{head}"):
            hidden = anonymous.get(path)
            assert _valid(models.BasicError, hidden, 404).message == "Not Found"
            assert anonymous.get(path.replace("/hidden", "/never-made")).json() == hidden.json()  # alike
        written = anonymous.post(f"/repos/{PLANTER_ORG}/hidden/issues", json={"title": "Anyone there?"})
        assert _valid(models.BasicError, written, 404).message == "Not Found"
        # What is public reads without a token; writing still needs one.
        assert _valid(models.FullRepository, anonymous.get(f"/repos/{TEMPLATE}"), 200).private is False
        _valid(models.OrganizationFull, anonymous.get(f"/orgs/{PLANTER_ORG}"), 200)
        refused = _valid(models.BasicError, anonymous.post(f"/repos/{TEMPLATE}/issues", json={"title": "Hello"}), 401)
        assert refused.message == "Requires authentication"
        bad = anonymous.get(f"/repos/{TEMPLATE}", headers={"Authorization": "Basic not-a-token"})
        assert _valid(models.BasicError, bad, 401).message == "Bad credentials"


def test_faults_answer_the_next_matching_requests(github: Running) -> None:
    with rest(github.base_url) as http:
        fault = {"method": "GET", "path": "^/orgs/", "status": 403, "times": 2, "headers": {"retry-after": "30"}}
        assert http.post("/_faults", json=fault).status_code == 200
        for _ in range(2):
            limited = http.get(f"/orgs/{PLANTER_ORG}")
            assert limited.status_code == 403 and limited.headers["retry-after"] == "30"
        assert http.get(f"/orgs/{PLANTER_ORG}").status_code == 200
        http.post("/_faults", json={"path": ".", "status": 502, "times": 5})
        assert http.delete("/_faults").status_code == 200
        assert http.get(f"/orgs/{PLANTER_ORG}").status_code == 200
