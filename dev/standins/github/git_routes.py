"""The git data API of the stand-in (refs, commits, trees, blobs) over the bare repositories."""

from __future__ import annotations

import base64
from typing import Any

from werkzeug.wrappers import Request, Response

from dev.standins.github import objects
from dev.standins.github.gitstore import GitError, GitStore
from dev.standins.github.replies import GitHubError, reply


class GitDataRoutes:
    """Mixed into GitHubStandIn, which provides the store, the URLs and the repository lookup."""

    git: GitStore
    base_url: str

    @property
    def web(self) -> str:
        return self.base_url

    def _full(self, owner: str, repo: str) -> tuple[str, str, str]:
        raise NotImplementedError

    def _writable(self, owner: str, repo: str) -> tuple[str, str, str]:
        raise NotImplementedError

    def _body(self, request: Request) -> dict[str, Any]:
        raise NotImplementedError

    def on_get_ref(self, request: Request, owner: str, repo: str, ref: str) -> Response:
        o, n, full = self._full(owner, repo)
        sha = self.git.get_ref(o, n, ref)
        if sha is None:
            if not self.git.get_ref(o, n, "heads/main"):
                raise GitHubError(409, "Git Repository is empty.")
            raise GitHubError(404, "Not Found")
        return reply(objects.git_ref(self.base_url, full, ref, sha))

    def on_update_ref(self, request: Request, owner: str, repo: str, ref: str) -> Response:
        o, n, full = self._writable(owner, repo)
        body = self._body(request)
        try:
            self.git.read_commit(o, n, str(body.get("sha")))
            self.git.set_ref(o, n, ref, str(body["sha"]), force=bool(body.get("force", False)))
        except (GitError, KeyError) as error:
            raise GitHubError(422, str(error) if "fast forward" in str(error) else "Object does not exist") from error
        return reply(objects.git_ref(self.base_url, full, ref, str(body["sha"])))

    def _commit_body(self, o: str, n: str, full: str, sha: str) -> dict[str, Any]:
        try:
            c = self.git.read_commit(o, n, sha)
        except GitError as error:
            raise GitHubError(404, "Not Found") from error
        return objects.git_commit(self.base_url, self.web, full, c.sha, c.tree, c.parents, c.message, c.author_date)

    def on_get_commit(self, request: Request, owner: str, repo: str, sha: str) -> Response:
        return reply(self._commit_body(*self._full(owner, repo), sha))

    def on_create_commit(self, request: Request, owner: str, repo: str) -> Response:
        o, n, full = self._writable(owner, repo)
        body = self._body(request)
        try:
            sha = self.git.commit(
                o, n, str(body["message"]), str(body["tree"]), [str(p) for p in body.get("parents", [])]
            )
        except (GitError, KeyError) as error:
            raise GitHubError(422, "Tree SHA does not exist") from error
        return reply(self._commit_body(o, n, full, sha), 201)

    def on_get_tree(self, request: Request, owner: str, repo: str, sha: str) -> Response:
        o, n, full = self._full(owner, repo)
        try:
            entries = self.git.read_tree(o, n, sha, recursive=bool(request.args.get("recursive")))
        except GitError as error:
            raise GitHubError(404, "Not Found") from error
        return reply(self._tree_body(full, sha, entries))

    def _tree_body(self, full: str, sha: str, entries: list[Any]) -> dict[str, Any]:
        items = [
            {
                "path": e.path,
                "mode": e.mode,
                "type": e.type,
                "sha": e.sha,
                "url": f"{self.base_url}/repos/{full}/git/{e.type}s/{e.sha}",
            }
            | ({"size": e.size} if e.size is not None else {})
            for e in entries
        ]
        return {"sha": sha, "url": f"{self.base_url}/repos/{full}/git/trees/{sha}", "tree": items, "truncated": False}

    def on_create_tree(self, request: Request, owner: str, repo: str) -> Response:
        o, n, full = self._writable(owner, repo)
        body = self._body(request)
        changes: list[tuple[str, str, str | None]] = []
        for item in body.get("tree", []):
            sha = item.get("sha")
            if "content" in item:
                sha = self.git.write_blob(o, n, str(item["content"]).encode())
            changes.append((str(item["path"]), str(item.get("mode", "100644")), sha))
        try:
            sha = self.git.make_tree(o, n, body.get("base_tree"), changes)
        except GitError as error:
            raise GitHubError(422, "tree.sha is not a valid blob") from error
        return reply(self._tree_body(full, sha, self.git.read_tree(o, n, sha, recursive=False)), 201)

    def on_get_blob(self, request: Request, owner: str, repo: str, sha: str) -> Response:
        o, n, full = self._full(owner, repo)
        try:
            data = self.git.read_blob(o, n, sha)
        except GitError as error:
            raise GitHubError(404, "Not Found") from error
        return reply(
            {
                "sha": sha,
                "node_id": objects.node_id("B", sha),
                "size": len(data),
                "url": f"{self.base_url}/repos/{full}/git/blobs/{sha}",
                "content": base64.b64encode(data).decode(),
                "encoding": "base64",
            }
        )

    def on_create_blob(self, request: Request, owner: str, repo: str) -> Response:
        o, n, full = self._writable(owner, repo)
        body = self._body(request)
        raw = str(body.get("content", ""))
        data = base64.b64decode(raw) if body.get("encoding") == "base64" else raw.encode()
        sha = self.git.write_blob(o, n, data)
        return reply({"url": f"{self.base_url}/repos/{full}/git/blobs/{sha}", "sha": sha}, 201)
