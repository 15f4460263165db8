"""The stand-in's WSGI app: GitHub's REST subset, `_faults`, git smart HTTP for `git clone`, and
plain web pages at the web URLs (dev/standins/github/web.py).

Errors come back as GitHub sends them: a JSON body with `message` and `documentation_url`
(plus `errors` on 422), the same status codes (404 for what the caller cannot see, a private
repository without a token included; 401 for a bad token, or a write without one; 422 for a
taken name, 409 for an empty repository).
"""

from __future__ import annotations

import json
import pathlib
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from dev.standins.faults import Faults
from dev.standins.github import objects, web
from dev.standins.github.git_routes import GitDataRoutes
from dev.standins.github.gitstore import GitStore
from dev.standins.github.replies import DOCS, GitHubError, jwt_claims, reply
from dev.standins.github.smart_http import serve_git
from dev.standins.github.state import State

_GIT_PATH = re.compile(
    r"^/(?P<owner>[^/]+)/(?P<repo>[^/]+?)(?:\.git)?/(?P<rest>info/refs|git-upload-pack|HEAD|objects/.+)$"
)
Handler = Callable[..., Response]
# What anyone may read without a token, of a public repository or organization.
_PUBLIC_READS = frozenset(
    {"get_org", "get_repo", "get_ref", "get_commit", "get_tree", "get_blob", "list_issues", "get_issue"}
)


class GitHubStandIn(GitDataRoutes):
    """One GitHub, its data under ``root`` (git repositories and state.json)."""

    def __init__(self, root: pathlib.Path, base_url: str = "") -> None:
        self.root = root
        self.git = GitStore(root / "git")
        self.state = State(root / "state.json")
        self.faults = Faults()
        self.base_url = base_url
        self.token = ""  # when set, the only token accepted; otherwise any token is
        self.calls: list[tuple[str, str]] = []
        self.tokens_issued = 0
        r = Rule
        self.rules = Map(
            [
                r("/_faults", endpoint="faults", methods=["POST", "DELETE"]),
                r("/orgs/<org>", endpoint="get_org", methods=["GET"]),
                r("/orgs/<org>/installation", endpoint="get_installation", methods=["GET"]),
                r("/app/installations/<int:iid>/access_tokens", endpoint="access_token", methods=["POST"]),
                r("/repos/<owner>/<repo>", endpoint="get_repo", methods=["GET"]),
                r("/repos/<owner>/<repo>", endpoint="update_repo", methods=["PATCH"]),
                r("/repos/<owner>/<repo>/generate", endpoint="generate", methods=["POST"]),
                r("/repos/<owner>/<repo>/git/ref/<path:ref>", endpoint="get_ref", methods=["GET"]),
                r("/repos/<owner>/<repo>/git/refs/<path:ref>", endpoint="update_ref", methods=["PATCH"]),
                r("/repos/<owner>/<repo>/git/commits/<sha>", endpoint="get_commit", methods=["GET"]),
                r("/repos/<owner>/<repo>/git/commits", endpoint="create_commit", methods=["POST"]),
                r("/repos/<owner>/<repo>/git/trees/<sha>", endpoint="get_tree", methods=["GET"]),
                r("/repos/<owner>/<repo>/git/trees", endpoint="create_tree", methods=["POST"]),
                r("/repos/<owner>/<repo>/git/blobs/<sha>", endpoint="get_blob", methods=["GET"]),
                r("/repos/<owner>/<repo>/git/blobs", endpoint="create_blob", methods=["POST"]),
                r("/repos/<owner>/<repo>/issues", endpoint="list_issues", methods=["GET"]),
                r("/repos/<owner>/<repo>/issues", endpoint="create_issue", methods=["POST"]),
                r("/repos/<owner>/<repo>/issues/<int:number>", endpoint="get_issue", methods=["GET"]),
            ]
        )

    # --- WSGI ----------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        git_path = _GIT_PATH.match(request.path)
        if git_path and git_path["owner"] not in ("repos", "orgs", "app"):
            # As on github.com, the web URL clones too: /owner/repo and /owner/repo.git are one repository.
            environ = {**environ, "PATH_INFO": f"/{git_path['owner']}/{git_path['repo']}.git/{git_path['rest']}"}
            return serve_git(self.git.root, environ, start_response)
        shown = web.page(request.path, self.state, self.git, self.base_url) if request.method == "GET" else None
        response = shown or self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        self.calls.append((request.method, request.path))
        if request.path != "/_faults":
            fault = self.faults.take(request.method, request.path)
            if fault is not None:
                status, headers, raw = fault
                return Response(raw, status=status, headers=headers)
        try:
            endpoint, args = self.rules.bind_to_environ(request.environ).match()
            if endpoint != "faults":
                self._authorize(request, endpoint, args)
            handler: Handler = getattr(self, f"on_{endpoint}")
            return handler(request, **args)
        except GitHubError as error:
            body: dict[str, Any] = {"message": error.message, "documentation_url": DOCS, "status": str(error.status)}
            if error.errors:
                body["errors"] = error.errors
            return reply(body, error.status)
        except NotFound:
            return reply({"message": "Not Found", "documentation_url": DOCS, "status": "404"}, 404)
        except HTTPException as error:
            return reply(
                {"message": error.name, "documentation_url": DOCS, "status": str(error.code)}, error.code or 500
            )

    def _authorize(self, request: Request, endpoint: str, args: Mapping[str, Any]) -> None:
        """As github.com: a token it does not take → 401. Without a token only what is public can be
        read, and a private repository answers 404 as a missing one does, not to reveal that it exists."""
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() not in ("bearer", "token") or not token or (self.token and token != self.token):
                raise GitHubError(401, "Bad credentials")
            return
        if "owner" in args and "repo" in args:
            meta = self.state.repo(args["owner"], args["repo"])
            if meta is None or meta.get("private", True):
                raise GitHubError(404, "Not Found")
        if request.method != "GET" or endpoint not in _PUBLIC_READS:
            raise GitHubError(401, "Requires authentication")

    def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = json.loads(request.get_data() or b"{}")
        except ValueError as exc:
            raise GitHubError(400, "Problems parsing JSON") from exc
        if not isinstance(body, dict):
            raise GitHubError(400, "Problems parsing JSON")
        return body

    def _repo(self, owner: str, repo: str) -> dict[str, Any]:
        meta = self.state.repo(owner, repo)
        if meta is None or not self.git.exists(meta["owner"], meta["name"]):
            raise GitHubError(404, "Not Found")
        return meta

    def _full(self, owner: str, repo: str) -> tuple[str, str, str]:
        meta = self._repo(owner, repo)
        return meta["owner"], meta["name"], f"{meta['owner']}/{meta['name']}"

    def _writable(self, owner: str, repo: str) -> tuple[str, str, str]:
        """As GitHub: an archived repository refuses every write (issues, git data, settings) with 403."""
        meta = self._repo(owner, repo)
        if meta.get("archived"):
            raise GitHubError(403, "Repository was archived so is read-only.")
        return meta["owner"], meta["name"], f"{meta['owner']}/{meta['name']}"

    # --- organizations and the App -------------------------------------------------------
    def on_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults.clear()
        else:
            self.faults.add(self._body(request))
        return reply({"ok": True})

    def on_get_org(self, request: Request, org: str) -> Response:
        if self.state.org(org) is None:
            raise GitHubError(404, "Not Found")
        return reply(objects.organization(self.base_url, self.web, org))

    def on_get_installation(self, request: Request, org: str) -> Response:
        known = self.state.org(org)
        if known is None or not known["installation_id"]:
            raise GitHubError(404, "Not Found")
        return reply(objects.installation(self.base_url, self.web, org, known["installation_id"]))

    def on_access_token(self, request: Request, iid: int) -> Response:
        # Only the App itself (a JWT naming its id) may buy installation tokens; they last an hour.
        claims = jwt_claims(request)
        if "iss" not in claims or "exp" not in claims:
            raise GitHubError(401, "A JSON web token could not be decoded")
        self.tokens_issued += 1
        token = f"ghs_placeholder_{iid}_{self.tokens_issued}"
        expires = datetime.fromtimestamp(time.time() + 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"token": token, "expires_at": expires, "permissions": {}, "repository_selection": "all"}
        return reply(body, 201)

    # --- repositories ----------------------------------------------------------------------
    def _repo_body(self, meta: dict[str, Any]) -> dict[str, Any]:
        full = f"{meta['owner']}/{meta['name']}"
        return objects.repository(self.base_url, self.web, meta, len(self.state.issues(full)))

    def on_get_repo(self, request: Request, owner: str, repo: str) -> Response:
        return reply(self._repo_body(self._repo(owner, repo)))

    def on_update_repo(self, request: Request, owner: str, repo: str) -> Response:
        # Only what Planter changes: archiving (GitHub cannot unarchive through the API either).
        o, n, _ = self._writable(owner, repo)
        body = self._body(request)
        with self.state.lock:
            meta = self.state.update_repo(o, n, **{k: body[k] for k in ("archived", "description") if k in body})
        return reply(self._repo_body(meta))

    def on_generate(self, request: Request, owner: str, repo: str) -> Response:
        template = self._repo(owner, repo)
        if not template.get("is_template"):
            raise GitHubError(404, "Not Found")
        body = self._body(request)
        target, name = str(body.get("owner") or ""), str(body.get("name") or "")
        if not name or not target:
            raise GitHubError(
                422, "Invalid request.", [{"resource": "Repository", "code": "missing_field", "field": "name"}]
            )
        known = self.state.org(target)
        if known is None or not known["installation_id"]:
            raise GitHubError(404, "Not Found")
        with self.state.lock:
            if self.state.repo(target, name) is not None:
                raise GitHubError(
                    422,
                    "Repository creation failed.",
                    [
                        {
                            "resource": "Repository",
                            "code": "custom",
                            "field": "name",
                            "message": "name already exists on this account",
                        }
                    ],
                )
            self.git.generate_from((template["owner"], template["name"]), target, name)
            meta = self.state.add_repo(
                target, name, private=bool(body.get("private", False)), description=body.get("description")
            )
        return reply(self._repo_body(meta), 201)

    # --- issues ------------------------------------------------------------------------------
    def on_list_issues(self, request: Request, owner: str, repo: str) -> Response:
        _, _, full = self._full(owner, repo)
        wanted = {x for x in request.args.get("labels", "").split(",") if x}
        per_page = min(100, int(request.args.get("per_page", 30)))
        page = int(request.args.get("page", 1))
        found = [
            objects.issue(self.base_url, self.web, full, i + 1, data)
            for i, data in enumerate(self.state.issues(full))
            if wanted <= set(data["labels"])
        ]
        found.reverse()  # newest first, as GitHub lists them
        return reply(found[(page - 1) * per_page : page * per_page])

    def on_create_issue(self, request: Request, owner: str, repo: str) -> Response:
        _, _, full = self._writable(owner, repo)
        body = self._body(request)
        title = body.get("title")
        if not isinstance(title, str) or not title.strip():
            raise GitHubError(
                422, "Validation Failed", [{"resource": "Issue", "code": "missing_field", "field": "title"}]
            )
        labels = [str(x) for x in body.get("labels", [])]
        number, data = self.state.add_issue(full, title, body.get("body"), labels)
        return reply(objects.issue(self.base_url, self.web, full, number, data), 201)

    def on_get_issue(self, request: Request, owner: str, repo: str, number: int) -> Response:
        _, _, full = self._full(owner, repo)
        issues = self.state.issues(full)
        if not 1 <= number <= len(issues):
            raise GitHubError(404, "Not Found")
        return reply(objects.issue(self.base_url, self.web, full, number, issues[number - 1]))

    # --- seeding -------------------------------------------------------------------------------
    def seed(self, planter_org: str, templates: dict[str, tuple[str, dict[str, str]]]) -> None:
        """Planter's organization (App installed) and the template repositories, once."""
        self.state.add_org(planter_org)
        for full, (description, files) in templates.items():
            owner, name = full.split("/")
            self.state.add_org(owner)
            if self.state.repo(owner, name) is None:
                self.git.init(owner, name)
                self.git.seed_files(owner, name, files, "Template")
                self.state.add_repo(owner, name, private=False, is_template=True, description=description)
